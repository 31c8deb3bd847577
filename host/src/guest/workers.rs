//! The bounded pool guest calls run on: a few OS threads of their own, never a tokio worker.
//!
//! Two reasons. wasmtime-wasi's synchronous bindings block on tokio internally (a guest writing
//! to stderr — a panic message — goes through them), which panics on a runtime's own thread.
//! And a guest call is CPU work: on a runtime that serves many CNI calls (the node daemon) it
//! must not stall the others. The pool has one thread per core (at most 8); a call beyond that
//! waits for a permit, so a burst queues instead of multiplying threads.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send>;

/// Worker threads fed by a channel; at most one job per thread is in flight.
pub(super) struct Workers {
    jobs: mpsc::Sender<Job>,
    permits: Semaphore,
}

impl Workers {
    /// Start one thread per core (1–8). The threads end when the pool is dropped.
    pub(super) fn start() -> std::io::Result<Self> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("wasmcni-guest-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Workers {
            jobs,
            permits: Semaphore::new(n),
        })
    }

    /// Run `f` on a worker and wait for it without blocking the caller's runtime. A panic in
    /// `f` is resumed here, in the caller (the CNI call answers 999, the worker lives on).
    /// `Err` only when the pool itself is broken.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| "the guest worker pool is closed".to_string())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs
            .send(job)
            .map_err(|_| "the guest worker threads are gone".to_string())?;
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err("a guest worker thread ended mid-call".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn jobs_run_off_the_runtime_and_never_more_than_the_pool_at_once() {
        let w = Arc::new(Workers::start().unwrap());
        let n = w.permits.available_permits();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let calls = (0..4 * n).map(|_| {
            let (w, running, peak) = (w.clone(), running.clone(), peak.clone());
            async move {
                w.run(move || {
                    assert!(tokio::runtime::Handle::try_current().is_err());
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().name().unwrap_or("").to_string()
                })
                .await
                .unwrap()
            }
        });
        let names = futures::future::join_all(calls).await;
        assert!(
            names.iter().all(|t| t.starts_with("wasmcni-guest-")),
            "{names:?}"
        );
        assert!(peak.load(Ordering::SeqCst) <= n);
    }

    #[tokio::test]
    async fn a_panicking_job_reaches_the_caller_and_the_worker_survives() {
        let w = Arc::new(Workers::start().unwrap());
        let w2 = w.clone();
        let panicked = tokio::spawn(async move { w2.run(|| panic!("guest host bug")).await })
            .await
            .unwrap_err();
        assert!(panicked.is_panic());
        for _ in 0..16 {
            assert_eq!(w.run(|| 7).await.unwrap(), 7);
        }
    }
}
