//! The write pipeline between the HTTP handlers and the backends: the record appended to a
//! group's durable log, the per-replica senders that drain it, the consistency wait that decides
//! when a client is answered, and the dead-letter files.
//!
//! It must never acknowledge a line that is not in the durable log, and never let a line a
//! backend rejects block the lines behind it.

pub mod acks;
pub mod batcher;
pub mod deadletter;
pub mod envelope;
pub mod pipeline;
pub mod sender;
