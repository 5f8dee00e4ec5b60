//! Exact handoff: once a system call that changed the mount returns (a `close` after writes,
//! `rename`, `unlink`, ...), every read of the session through the server and every
//! checkpoint, fork or export started afterwards sees the change. The mount keeps a channel to
//! the server (`MountService.Attach`) and says "dirty" before the first such call returns while
//! it holds changes the server does not have, waiting for the server's acknowledgement; while it
//! stays dirty, further calls cost nothing. Before the server serves a read or freezes a state,
//! it recalls the changes of dirty mounts: the mount sends everything it accepted, waits for the
//! server to hold it, and answers. Once nothing is left to send, the mount says "clean" and the
//! server stops recalling it. See docs/decisions.md, "Exact handoff".
//!
//! Between mounts: while other mounts of the session are attached (the server says how many),
//! each change also reports its paths ([`Handoff::changed`]) before its system call returns, and
//! the server acknowledges once every other mount dropped what its kernel cached of them
//! ([`AetherFs::invalidate_paths`]): the kernel of another mount would otherwise open a file it
//! has cached without asking its mount. Writes report a file once until the next recall or
//! "clean" (another mount can only cache newer bytes of it after one of those).
//!
//! Ordering: a change is applied locally (queued, or its file marked) before
//! [`Handoff::announce`] reads `announced`; the clean check clears `announced` before it looks
//! for unsent changes. Either the check sees the change (and stays dirty) or the call sees
//! `announced` cleared and announces again, after the "clean" it may have raced with.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use aether_proto::remote::Remote;
use aether_proto::v1 as pb;
use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc;

use crate::fs::AetherFs;

/// Longest a system call waits for the server to acknowledge "dirty". Past it the call returns
/// anyway (the server is not answering: nobody reads through it meanwhile) and the mount logs it.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);
/// How often a dirty mount checks whether it has become clean.
const CLEAN_CHECK: Duration = Duration::from_millis(250);
/// Pause before attaching again after the channel broke.
const RECONNECT: Duration = Duration::from_millis(500);
/// After the server failed to acknowledge in time, how long calls go on without asking again
/// (each would wait [`ANNOUNCE_WAIT`] on a server that is not answering).
const UNANSWERED_PAUSE: Duration = Duration::from_secs(10);
/// Longest a system call waits for the server to say the other mounts dropped what they cached
/// of its change; longer than the server's default handoff time (5 s), which bounds its wait.
const CHANGED_WAIT: Duration = Duration::from_secs(10);
/// Longest this mount waits for its kernel to drop what another mount's change invalidated
/// before answering anyway (the kernel waits for a directory lock a request holds).
const INVALIDATE_WAIT: Duration = Duration::from_secs(5);

type Reports = mpsc::UnboundedSender<pb::MountReport>;

#[derive(Default)]
struct State {
    /// The channel to the server while attached.
    channel: Option<Reports>,
    /// The number of the last "dirty" sent, and the last acknowledged.
    sent: u64,
    acked: u64,
    /// Whether the server knows the mount is dirty (acknowledged, and no "clean" since).
    announced: bool,
    /// Until when calls do not wait for acknowledgements (the server did not answer one).
    unanswered_until: Option<std::time::Instant>,
    /// The number of the last "changed" sent, and those acknowledged not yet collected.
    changed_sent: u64,
    changed_done: HashSet<u64>,
}

/// The mount's side of the handoff. Cheap to share; inert until attached.
#[derive(Default)]
pub struct Handoff {
    state: Mutex<State>,
    acked: Condvar,
    /// `state.announced`, readable without the lock: the cost of a change while dirty.
    announced: AtomicBool,
    /// Other mounts attached to the session, as the server last said.
    peers: AtomicU32,
    /// Files whose writes were reported since the last recall or "clean".
    written: Mutex<HashSet<u64>>,
}

fn report(r: pb::mount_report::Report) -> pb::MountReport {
    pb::MountReport { report: Some(r) }
}

impl Handoff {
    /// Called after a change is applied locally and before the system call returns: make sure
    /// the server knows this mount holds changes it does not have.
    pub fn announce(&self) {
        if self.announced.load(Ordering::SeqCst) {
            return;
        }
        let mut st = self.state.lock();
        if st.announced {
            return;
        }
        let Some(channel) = st.channel.clone() else {
            // Not attached (connecting, or a server without handoff): nothing to tell.
            return;
        };
        if st.unanswered_until.is_some_and(|t| std::time::Instant::now() < t) {
            return;
        }
        // A "dirty" already under way covers this change too.
        if st.sent <= st.acked {
            st.sent += 1;
            let n = st.sent;
            if channel.send(report(pb::mount_report::Report::Dirty(n))).is_err() {
                return;
            }
        }
        let want = st.sent;
        let timed_out = self
            .acked
            .wait_while_for(&mut st, |s| s.acked < want && s.channel.is_some(), ANNOUNCE_WAIT)
            .timed_out();
        if timed_out {
            tracing::warn!("the server did not acknowledge that the mount holds changes; going on");
            st.unanswered_until = Some(std::time::Instant::now() + UNANSWERED_PAUSE);
        }
    }

    /// Whether other mounts of the session are attached (changes then report their paths).
    pub fn has_peers(&self) -> bool {
        self.peers.load(Ordering::SeqCst) > 0
    }

    /// Whether a write to `ino` must be reported: the first since the last recall or "clean".
    pub fn first_write(&self, ino: u64) -> bool {
        self.written.lock().insert(ino)
    }

    /// Called after a change to `paths` is applied locally and announced, before the system
    /// call returns, while other mounts are attached: wait until the server says they dropped
    /// what they cached of `paths`.
    pub fn changed(&self, paths: Vec<String>) {
        if paths.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        let Some(channel) = st.channel.clone() else {
            return;
        };
        if st.unanswered_until.is_some_and(|t| std::time::Instant::now() < t) {
            return;
        }
        st.changed_sent += 1;
        let n = st.changed_sent;
        let sent = channel.send(report(pb::mount_report::Report::Changed(pb::Changed { id: n, paths })));
        if sent.is_err() {
            return;
        }
        let timed_out = self
            .acked
            .wait_while_for(
                &mut st,
                |s| !s.changed_done.remove(&n) && s.channel.is_some(),
                CHANGED_WAIT,
            )
            .timed_out();
        if timed_out {
            tracing::warn!("the server did not say the other mounts saw a change; going on");
            st.unanswered_until = Some(std::time::Instant::now() + UNANSWERED_PAUSE);
        }
    }

    fn on_changed(&self, n: u64) {
        let mut st = self.state.lock();
        if n <= st.changed_sent {
            st.changed_done.insert(n);
        }
        self.acked.notify_all();
    }

    fn on_peers(&self, count: u32) {
        self.peers.store(count, Ordering::SeqCst);
    }

    /// Another mount may cache newer bytes of any file from now on (a recall sends them, or
    /// the mount said "clean"): the next write of each file is reported again.
    fn forget_written(&self) {
        self.written.lock().clear();
    }

    fn on_ack(&self, n: u64) {
        let mut st = self.state.lock();
        st.acked = st.acked.max(n);
        st.unanswered_until = None;
        if st.acked >= st.sent && st.channel.is_some() {
            st.announced = true;
            self.announced.store(true, Ordering::SeqCst);
        }
        self.acked.notify_all();
    }

    /// Say "clean" if nothing is left to send (`unsent` looks).
    fn check_clean(&self, unsent: impl FnOnce() -> bool) {
        let mut st = self.state.lock();
        if !st.announced {
            return;
        }
        self.announced.store(false, Ordering::SeqCst);
        if unsent() {
            self.announced.store(true, Ordering::SeqCst);
            return;
        }
        st.announced = false;
        let n = st.sent;
        self.forget_written();
        if let Some(c) = &st.channel {
            let _ = c.send(report(pb::mount_report::Report::Clean(n)));
        }
    }

    fn attached(&self, channel: Reports) {
        let mut st = self.state.lock();
        st.channel = Some(channel);
        st.announced = false;
        st.changed_done.clear();
        self.announced.store(false, Ordering::SeqCst);
    }

    fn detached(&self) {
        let mut st = self.state.lock();
        st.channel = None;
        st.announced = false;
        st.acked = st.sent;
        st.changed_done.clear();
        self.announced.store(false, Ordering::SeqCst);
        self.peers.store(0, Ordering::SeqCst);
        self.forget_written();
        self.acked.notify_all();
    }

    /// Whether the server knows this mount is dirty (for tests).
    pub fn is_announced(&self) -> bool {
        self.announced.load(Ordering::SeqCst)
    }
}

/// Keep the mount attached to `session` for as long as the mount lives, reattaching after a
/// failure. A server that does not offer `Attach` is tried again later, quietly.
pub(crate) async fn attach_session(
    remote: Remote,
    session: String,
    fs: AetherFs,
    mut first: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let handoff = fs.handoff().clone();
    loop {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(report(pb::mount_report::Report::Session(session.clone())));
        let outgoing = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        match remote.mount().attach(outgoing).await {
            Ok(resp) => {
                handoff.attached(tx.clone());
                // Other mounts' changes made while detached were not reported here: whatever
                // is cached is looked up again.
                let f = fs.clone();
                let _ = tokio::task::spawn_blocking(move || f.invalidate_everything()).await;
                if let Some(f) = first.take() {
                    let _ = f.send(());
                }
                // What was accepted while detached is announced now.
                let f = fs.clone();
                if tokio::task::spawn_blocking(move || f.has_unsent())
                    .await
                    .unwrap_or(true)
                {
                    let h = handoff.clone();
                    tokio::task::spawn_blocking(move || h.announce());
                }
                serve_commands(resp.into_inner(), &tx, &fs, &handoff).await;
                handoff.detached();
            }
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                first.take();
                tracing::warn!("the server offers no handoff channel: API reads may miss changes not yet sent");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Err(e) => tracing::debug!(error = %e, "cannot attach the mount for handoff; retrying"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Answer the server's commands until the channel ends; check for "clean" meanwhile.
async fn serve_commands(
    mut commands: tonic::Streaming<pb::MountCommand>,
    tx: &Reports,
    fs: &AetherFs,
    handoff: &Arc<Handoff>,
) {
    use pb::mount_command::Command;
    let mut tick = tokio::time::interval(CLEAN_CHECK);
    loop {
        tokio::select! {
            msg = commands.message() => match msg {
                Ok(Some(pb::MountCommand { command: Some(Command::Ack(n)) })) => handoff.on_ack(n),
                Ok(Some(pb::MountCommand { command: Some(Command::Changed(n)) })) => handoff.on_changed(n),
                Ok(Some(pb::MountCommand { command: Some(Command::Peers(p)) })) => {
                    handoff.on_peers(p.count);
                    let _ = tx.send(report(pb::mount_report::Report::PeersSeen(p.id)));
                }
                Ok(Some(pb::MountCommand { command: Some(Command::Invalidate(inv)) })) => {
                    let (f, tx) = (fs.clone(), tx.clone());
                    tokio::task::spawn_blocking(move || {
                        // Not answered when not done: the server then names this mount in a
                        // `handoff_incomplete` event instead of counting it as current.
                        if f.invalidate_paths(&inv.paths, INVALIDATE_WAIT) {
                            let _ = tx.send(report(pb::mount_report::Report::Invalidated(inv.id)));
                        } else {
                            tracing::warn!(paths = ?inv.paths, "the kernel did not drop another mount's change in time");
                        }
                    });
                }
                Ok(Some(pb::MountCommand { command: Some(Command::Recall(n)) })) => {
                    handoff.forget_written();
                    let (f, tx) = (fs.clone(), tx.clone());
                    tokio::task::spawn_blocking(move || {
                        let (refused, error) = f.hand_over();
                        let _ = tx.send(report(pb::mount_report::Report::Recalled(pb::Recalled {
                            recall: n,
                            refused,
                            error,
                        })));
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "the handoff channel ended; attaching again");
                    return;
                }
            },
            _ = tick.tick() => {
                if handoff.is_announced() {
                    let (f, h) = (fs.clone(), handoff.clone());
                    let _ = tokio::task::spawn_blocking(move || h.check_clean(|| f.has_unsent())).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's acknowledgement of `n`, arriving after `ms` milliseconds.
    fn ack_later(h: &Arc<Handoff>, n: u64, ms: u64) -> std::thread::JoinHandle<()> {
        let h = h.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            h.on_ack(n);
        })
    }

    fn sent(rx: &mut mpsc::UnboundedReceiver<pb::MountReport>) -> Vec<pb::mount_report::Report> {
        std::iter::from_fn(|| rx.try_recv().ok().and_then(|r| r.report)).collect()
    }

    #[test]
    fn dirty_is_said_once_and_acknowledged_before_announce_returns() {
        use pb::mount_report::Report;
        let h = Arc::new(Handoff::default());
        // Not attached: nothing to say, nothing to wait for.
        h.announce();
        let (tx, mut rx) = mpsc::unbounded_channel();
        h.attached(tx);
        let acker = ack_later(&h, 1, 50);
        h.announce();
        assert!(h.is_announced(), "announce returns once the server acknowledged");
        acker.join().unwrap();
        h.announce();
        assert_eq!(sent(&mut rx), [Report::Dirty(1)], "dirty once while dirty");

        // Something still unsent: no clean.
        h.check_clean(|| true);
        assert!(h.is_announced());
        assert!(sent(&mut rx).is_empty());
        h.check_clean(|| false);
        assert!(!h.is_announced());
        assert_eq!(sent(&mut rx), [Report::Clean(1)]);

        // The next change announces again, after the clean.
        let acker = ack_later(&h, 2, 20);
        h.announce();
        acker.join().unwrap();
        assert_eq!(sent(&mut rx), [Report::Dirty(2)]);
    }

    #[test]
    fn a_lost_channel_releases_waiters_and_the_next_attachment_announces_anew() {
        let h = Arc::new(Handoff::default());
        let (tx, _rx) = mpsc::unbounded_channel();
        h.attached(tx);
        let waiter = {
            let h = h.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                h.announce();
                start.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        h.detached();
        assert!(waiter.join().unwrap() < ANNOUNCE_WAIT, "released when the channel went");
        assert!(!h.is_announced());
        let (tx, mut rx) = mpsc::unbounded_channel();
        h.attached(tx);
        let acker = ack_later(&h, 2, 20);
        h.announce();
        acker.join().unwrap();
        assert!(h.is_announced());
        assert_eq!(sent(&mut rx), [pb::mount_report::Report::Dirty(2)]);
    }
}
