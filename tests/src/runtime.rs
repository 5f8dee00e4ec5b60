//! The one async runtime the suite's clients run on. Tests are synchronous threads; each client
//! call blocks on this runtime with its own time limit, so a hung response is a counted timeout,
//! never a hung test.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("integrity-client")
            .enable_all()
            .build()
            .expect("the test clients' runtime starts")
    })
}

/// Run `f` to completion on the runtime, or give up after `limit` (`None`).
pub fn block_on_for<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    runtime().block_on(async move { tokio::time::timeout(limit, f).await.ok() })
}

/// Run `f` on its own thread and wait at most `limit` for it. A blocking call that never
/// returns (a read from a hung mount) leaves its thread behind; the caller reports the hang and
/// tears the mount down, which frees the thread.
pub fn thread_with_limit<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a worker thread");
    rx.recv_timeout(limit).ok()
}

/// `f` over `items` on `workers` threads; results in the order of `items`.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let results: parking_lot::Mutex<Vec<Option<R>>> = parking_lot::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    results.lock()[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().into_iter().flatten().collect()
}
