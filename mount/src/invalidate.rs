//! Kernel cache invalidation, sent from its own thread: a notification sent from inside a FUSE
//! request can deadlock against the kernel waiting on that same request.

use std::ffi::OsString;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, OnceLock};

use fuser::{INodeNo, Notifier};

pub enum Inval {
    /// Drop a name from the kernel's entry cache.
    Entry { parent: u64, name: OsString },
    /// Drop an inode's attributes and cached pages.
    Inode { ino: u64 },
    /// Answered once every notification sent before it is done.
    Barrier(SyncSender<()>),
}

#[derive(Clone)]
pub struct Invalidator {
    tx: Sender<Inval>,
    notifier: Arc<OnceLock<Notifier>>,
}

impl Invalidator {
    pub fn start() -> Invalidator {
        let (tx, rx) = channel();
        let notifier: Arc<OnceLock<Notifier>> = Arc::new(OnceLock::new());
        let n = notifier.clone();
        let spawned = std::thread::Builder::new()
            .name("aether-inval".into())
            .spawn(move || run(&rx, &n));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the invalidation thread; kernel caches expire by time only");
        }
        Invalidator { tx, notifier }
    }

    /// Connect to the mounted session; notifications before this are dropped (nothing is cached yet).
    pub fn connect(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    pub fn send(&self, inval: Inval) {
        let _ = self.tx.send(inval);
    }

    /// Wait, at most `wait`, until the kernel has done every notification sent before; false
    /// if it has not in time (a notification waits for a directory lock a request holds).
    pub fn barrier(&self, wait: std::time::Duration) -> bool {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Inval::Barrier(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(wait).is_ok()
    }
}

fn run(rx: &Receiver<Inval>, notifier: &OnceLock<Notifier>) {
    while let Ok(inval) = rx.recv() {
        if let Inval::Barrier(done) = inval {
            let _ = done.send(());
            continue;
        }
        let Some(n) = notifier.get() else { continue };
        // ENOENT only means the kernel had nothing cached.
        let _ = match inval {
            Inval::Entry { parent, name } => n.inval_entry(INodeNo(parent), &name),
            Inval::Inode { ino } => n.inval_inode(INodeNo(ino), 0, 0),
            Inval::Barrier(_) => Ok(()),
        };
    }
}
