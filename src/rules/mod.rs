//! Alert rules evaluated on the ingest path and their bounded window buffer. Not implemented
//! yet (issue 5); it must never block or slow the write path beyond its budget.
