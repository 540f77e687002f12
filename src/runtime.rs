//! The process's one tokio runtime, shared by every HTTP client (captioners, embeddings) and
//! the Qdrant server's gRPC client: two worker threads drive all the requests in flight, however
//! many there are.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

pub fn shared() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("scenedex-io")
            .enable_all()
            .build()
            // Only a process out of threads or file descriptors gets here.
            .unwrap_or_else(|e| {
                eprintln!("Error: cannot start the I/O runtime: {e}");
                std::process::exit(1)
            })
    })
}

/// Runs a future to its end on the shared runtime, from a thread that is not one of its own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    shared().block_on(future)
}
