//! The InfluxQL subset the query merger needs, and the merge itself. Not implemented yet
//! (issue 4); it must never return a merged answer it cannot prove correct.
