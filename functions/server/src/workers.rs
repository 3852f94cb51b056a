//! The threads that serve connections: one single-threaded runtime a core, each connection
//! handed to one of them in turn and served there to its end.
//!
//! A device's poll is a few microseconds of work between a read and a write on one socket; on
//! tokio's work-stealing scheduler every such wake-up may move the connection's task to another
//! worker (a cross-core wake, an idle worker woken to steal it), which cost about an eighth of
//! the steady poll's CPU. A connection that stays on the thread that accepted its task is woken
//! by that thread's own event loop. The store's blocking work (`spawn_blocking`) still runs on
//! each runtime's own blocking threads.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

pub struct Workers {
    workers: Vec<Worker>,
    next: usize,
}

struct Worker {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Workers {
    /// Starts `n` (at least one) serving threads.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let workers = (0..n.max(1))
            .map(|i| {
                let runtime = Builder::new_current_thread().enable_all().build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = oneshot::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name(format!("ota-serve-{i}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                    })?;
                Ok(Worker {
                    handle,
                    stop,
                    thread,
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { workers, next: 0 })
    }

    /// Serves `task` on the next thread in turn.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.workers[self.next].handle.spawn(task);
        self.next = (self.next + 1) % self.workers.len();
    }

    /// Stops the threads once what they serve has ended (what is still running is dropped).
    pub fn stop(self) {
        for w in self.workers {
            let _ = w.stop.send(());
            let _ = w.thread.join();
        }
    }
}
