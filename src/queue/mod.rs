//! The durable per-group write log with one read cursor per replica. Not implemented yet
//! (issue 3); it must never hand a replica a record whose checksum does not match.
