//! The shard map: index to shard group routing and replica state. Not implemented yet
//! (issue 3); it must never route one index to two different groups at once.
