//! The tokio runtime the servers run on, and how a server's future is run on it.
//!
//! The server future (its accept loop) runs on a worker thread, never on the thread that calls
//! `block_on`: a connection accepted there is handed to a worker through the global queue and
//! wakes it, two thread switches per connection; accepted on a worker, the connection's task
//! starts on that same worker.

use std::future::Future;

/// Why the runtime could not run a server.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start the async runtime: {0}")]
    Start(#[from] std::io::Error),
    #[error("the server task ended abnormally: {0}")]
    Panicked(#[from] tokio::task::JoinError),
}

/// Builds a multi-thread runtime (one worker per core) and runs `server` on one of its workers
/// until it returns.
pub fn run_server<F, T>(server: F) -> Result<T, RuntimeError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let task = runtime.spawn(server);
    Ok(runtime.block_on(task)?)
}
