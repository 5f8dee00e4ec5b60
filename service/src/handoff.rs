//! Exact handoff: what a mount has closed is what every other caller sees. A mount that may
//! change a session attaches ([`Service::attach_mount`]) and reports whether it holds changes the
//! server does not have yet; it reports "dirty" (and waits for the acknowledgement) before the
//! system call that made such a change returns. Before the service serves a read of a session's
//! live state or freezes it (checkpoint, commit, fork, export, restore, git fetch), it recalls
//! the changes of every dirty mount of the session but the caller's own
//! ([`Service::recall`]) and waits, at most the configured time, for each to answer once they
//! are on the server: as NFSv4 recalls a delegation. A mount that does not answer in time is
//! named in a `handoff_incomplete` event, and the call goes on.
//!
//! Between mounts: the kernel of another mount opens a file it has cached without asking its
//! mount, so a recall alone cannot help it. While more than one mount of a session is attached
//! (each knows how many others are: [`MountCommand::Peers`], and a new mount's attachment is
//! complete only once every other mount knows of it), a mount reports each change's paths
//! ([`MountReport::Changed`]) before the system call returns; the service forwards them to every
//! other mount ([`MountCommand::Invalidate`]), which drops what its kernel holds of them and
//! answers, and only then acknowledges the change. Waits are bounded by the handoff time. Two
//! mounts changing at the same moment could each wait for the other while their kernels hold
//! directory locks the other's invalidation needs: a mount never waits for a mount with a
//! lower attachment number that is itself waiting for a change to be acknowledged, so the
//! waits form no cycle (the lower-numbered mount's change is then seen one round trip late).
//!
//! The common case costs one map lookup: no mount is attached, or none is dirty.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aether_core::{EventKind, SessionId};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// Most mounts attached to one session at a time.
pub const MAX_ATTACHED: usize = 64;

/// What a mount says on its handoff channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountReport {
    /// It holds changes the server does not have; acknowledged with this number.
    Dirty(u64),
    /// Everything it accepted is on the server or refused by it.
    Clean(u64),
    /// The changes recall `recall` asked for are on the server; `refused` were refused by it,
    /// `error` says why not everything could be sent.
    Recalled {
        recall: u64,
        refused: u32,
        error: Option<String>,
    },
    /// It changed these paths (sent only while other mounts are attached); acknowledged with
    /// [`MountCommand::Changed`] once the other mounts dropped what they cached of them.
    Changed { id: u64, paths: Vec<String> },
    /// The [`MountCommand::Invalidate`] with this number is done.
    Invalidated(u64),
    /// The [`MountCommand::Peers`] with this number is known.
    PeersSeen(u64),
}

/// What the service asks of an attached mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountCommand {
    /// The dirty report with this number is known.
    Ack(u64),
    /// Send every change accepted so far, then answer `Recalled` with this number.
    Recall(u64),
    /// The changed report with this number reached the other mounts (or was given up on).
    Changed(u64),
    /// Another mount changed these paths: drop what is cached of them, then answer
    /// `Invalidated` with this number.
    Invalidate { id: u64, paths: Arc<[String]> },
    /// How many other mounts are attached to the session now; answer `PeersSeen` with `id`.
    Peers { id: u64, count: u32 },
}

struct Attached {
    /// Tells attachments of one mount id apart (a mount that reconnects attaches anew).
    key: u64,
    mount: String,
    /// Whether its principal may change the session (a read-only mount only listens).
    writer: bool,
    dirty: AtomicBool,
    /// Since when it has been dirty without a clean report in between: the age of its oldest
    /// change the server does not have (for `health`).
    dirty_since: Mutex<Option<Instant>>,
    commands: mpsc::Sender<MountCommand>,
    recalls: Mutex<HashMap<u64, oneshot::Sender<Option<String>>>>,
    /// Answers awaited from it (`Invalidated`, `PeersSeen`) by number.
    answers: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Its changes still waiting for the other mounts, and a wake-up when one starts.
    changing: AtomicUsize,
    started_changing: Notify,
    /// The directories it listed: its kernel can hold entries of no other.
    listed: Mutex<Listed>,
}

impl Attached {
    fn became_dirty(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        self.dirty_since.lock().get_or_insert_with(Instant::now);
    }
}

/// The directories a mount listed while attached, and its listings under way (each of a
/// directory, and perhaps of the directories below it): a change elsewhere needs to reach the
/// mount only if it touches an entry of one of them. Never shrinks: too many invalidations cost
/// a round trip, too few a stale answer.
#[derive(Default)]
struct Listed {
    dirs: HashSet<String>,
    under_way: Vec<(u64, String, bool)>,
}

impl Listed {
    /// Whether the mount may hold entries of `dir`.
    fn covers(&self, dir: &str) -> bool {
        self.dirs.contains(dir)
            || self
                .under_way
                .iter()
                .any(|(_, p, below)| p == dir || (*below && within(dir, p)))
    }
}

/// Whether `path` is `dir` or below it (`""` is the root).
fn within(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path[dir.len()..].starts_with('/'))
}

/// Whether a mount that listed `listed` may hold an entry of one of `paths` (the root's own
/// attributes are an entry of no directory: always).
fn concerns(listed: &Listed, paths: &[String]) -> bool {
    paths.iter().any(|p| match p.rsplit_once('/') {
        Some((dir, _)) => listed.covers(dir),
        None => p.is_empty() || listed.covers(""),
    })
}

/// A listing for an attached mount, registered before it is computed (so a change made
/// meanwhile is sent to the mount); [`Listing::done`] records the directories it returned.
pub(crate) struct Listing {
    mounts: Vec<Arc<Attached>>,
    token: u64,
}

impl Listing {
    /// Record that the listing returned `dirs` (it stays registered while it lives).
    pub(crate) fn returned<'a>(&self, dirs: impl IntoIterator<Item = &'a str>) {
        let dirs: Vec<&str> = dirs.into_iter().collect();
        for a in &self.mounts {
            let mut l = a.listed.lock();
            l.dirs.extend(dirs.iter().map(|d| d.to_string()));
        }
    }

    pub(crate) fn done<'a>(self, dirs: impl IntoIterator<Item = &'a str>) {
        self.returned(dirs);
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        for a in &self.mounts {
            a.listed.lock().under_way.retain(|(t, _, _)| *t != self.token);
        }
    }
}

/// The mounts attached to each session.
#[derive(Default)]
pub(crate) struct Mounts {
    by_session: Mutex<HashMap<SessionId, Vec<Arc<Attached>>>>,
    next: AtomicU64,
}

impl Mounts {
    /// Mounts attached now, over every session.
    pub(crate) fn attached(&self) -> usize {
        self.by_session.lock().values().map(Vec::len).sum()
    }

    fn dirty_except(&self, id: &SessionId, except: Option<&str>) -> Vec<Arc<Attached>> {
        let map = self.by_session.lock();
        let Some(list) = map.get(id) else {
            return Vec::new();
        };
        list.iter()
            .filter(|a| a.dirty.load(Ordering::SeqCst) && Some(a.mount.as_str()) != except)
            .cloned()
            .collect()
    }

    /// The mounts attached to `id` but the one with `key`.
    fn others(&self, id: &SessionId, key: u64) -> Vec<Arc<Attached>> {
        let map = self.by_session.lock();
        map.get(id)
            .map(|list| list.iter().filter(|a| a.key != key).cloned().collect())
            .unwrap_or_default()
    }

    fn detach(&self, id: &SessionId, key: u64) {
        let mut map = self.by_session.lock();
        if let Some(list) = map.get_mut(id) {
            list.retain(|a| a.key != key);
            // The others learn they have one peer less (nothing to wait for: fewer peers only
            // spares them round trips).
            let count = list.len().saturating_sub(1) as u32;
            for a in list.iter() {
                let id = self.next.fetch_add(1, Ordering::Relaxed);
                let _ = a.commands.try_send(MountCommand::Peers { id, count });
            }
            if list.is_empty() {
                map.remove(id);
            }
        }
    }

    /// The mounts attached to `id` now, in the order they attached.
    pub(crate) fn health(&self, id: &SessionId) -> Vec<crate::health::MountHealth> {
        let map = self.by_session.lock();
        map.get(id)
            .map(|list| {
                list.iter()
                    .map(|a| crate::health::MountHealth {
                        mount: a.mount.clone(),
                        writer: a.writer,
                        pending_for: a.dirty_since.lock().map(|t| t.elapsed()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// Wait for `peer`'s answer to `rx` until `deadline`; true if it answered or is excused: it is
/// itself waiting for a change of its own to be acknowledged and was attached before `me` (see
/// the module's note on cycles).
async fn answered_or_excused(me: &Attached, peer: &Attached, mut rx: oneshot::Receiver<()>, deadline: Instant) -> bool {
    loop {
        let woken = peer.started_changing.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if peer.key < me.key && peer.changing.load(Ordering::SeqCst) > 0 {
            tracing::debug!(mount = %me.mount, peer = %peer.mount, "not waiting for a mount that is changing too");
            return true;
        }
        tokio::select! {
            r = &mut rx => return r.is_ok(),
            () = &mut woken => {}
            () = tokio::time::sleep_until(deadline.into()) => return false,
        }
    }
}

/// One mount's handoff channel, attached while this value lives: the codec feeds it the
/// mount's reports and sends the mount what the [`Commands`] returned with it yield. Dropping
/// it detaches the mount (its recalls under way end as not answered).
pub struct Attachment {
    service: Service,
    session: SessionId,
    attached: Arc<Attached>,
}

/// What to send an attached mount, in order; ends when the attachment is dropped.
pub type Commands = mpsc::Receiver<MountCommand>;

impl Attachment {
    pub fn mount(&self) -> &str {
        &self.attached.mount
    }

    /// One report of the mount. An answer to a recall no longer waited for (it timed out) is
    /// dropped.
    pub async fn report(&self, r: MountReport) -> Result<()> {
        let a = &self.attached;
        match r {
            MountReport::Dirty(_) | MountReport::Changed { .. } if !a.writer => {
                return Err(ServiceError::forbidden("a read-only mount cannot change the session"));
            }
            MountReport::Dirty(n) => {
                a.became_dirty();
                // The mount waits for this before its system call returns.
                a.commands
                    .send(MountCommand::Ack(n))
                    .await
                    .map_err(|_| ServiceError::unavailable("the mount's channel is closed"))?;
            }
            MountReport::Clean(_) => {
                a.dirty.store(false, Ordering::SeqCst);
                *a.dirty_since.lock() = None;
            }
            MountReport::Changed { id, paths } => {
                a.became_dirty();
                a.changing.fetch_add(1, Ordering::SeqCst);
                a.started_changing.notify_waiters();
                // Answered from a task of its own: the mount's other reports (a recall's answer
                // another mount's listing waits for) must not queue behind it.
                let (service, session, me) = (self.service.clone(), self.session.clone(), a.clone());
                tokio::spawn(async move {
                    service.invalidate_peers(&session, &me, paths).await;
                    me.changing.fetch_sub(1, Ordering::SeqCst);
                    let _ = me.commands.send(MountCommand::Changed(id)).await;
                });
            }
            MountReport::Invalidated(n) | MountReport::PeersSeen(n) => {
                if let Some(waiter) = a.answers.lock().remove(&n) {
                    let _ = waiter.send(());
                }
            }
            MountReport::Recalled { recall, refused, error } => {
                let waiter = a.recalls.lock().remove(&recall);
                let Some(waiter) = waiter else {
                    tracing::debug!(mount = %a.mount, recall, "a late answer to a recall");
                    return Ok(());
                };
                if refused > 0 {
                    tracing::info!(mount = %a.mount, refused, "a recalled mount's changes were partly refused");
                }
                let _ = waiter.send(error);
            }
        }
        Ok(())
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.service.inner.mounts.detach(&self.session, self.attached.key);
    }
}

impl Service {
    /// Attach the calling mount (its principal names it) to `session`. A mount whose principal
    /// may only read attaches to hear of other mounts' changes; it cannot report any. Returns
    /// once every mount attached before knows of this one (or the handoff time passed).
    pub async fn attach_mount(&self, p: &Principal, session: &str) -> Result<(Attachment, Commands)> {
        let mount = p
            .mount
            .clone()
            .ok_or_else(|| ServiceError::invalid("only a mount attaches: send its id as aether-mount"))?;
        let (id, writer) = match self.session(p, session, Access::Write) {
            Ok(id) => (id, true),
            Err(_) => (self.session(p, session, Access::Read)?, false),
        };
        self.engine().get_session(&id).await?;
        let (tx, rx) = mpsc::channel(64);
        let mounts = &self.inner.mounts;
        let attached = Arc::new(Attached {
            key: mounts.next.fetch_add(1, Ordering::Relaxed),
            mount,
            writer,
            dirty: AtomicBool::new(false),
            dirty_since: Mutex::default(),
            commands: tx,
            recalls: Mutex::default(),
            answers: Mutex::default(),
            changing: AtomicUsize::new(0),
            started_changing: Notify::new(),
            listed: Mutex::default(),
        });
        {
            let mut map = mounts.by_session.lock();
            let list = map.entry(id.clone()).or_default();
            if list.len() >= MAX_ATTACHED {
                return Err(ServiceError::too_large(format!(
                    "session {id} has {MAX_ATTACHED} mounts attached already"
                )));
            }
            list.push(attached.clone());
        }
        let attachment = Attachment {
            service: self.clone(),
            session: id,
            attached,
        };
        self.tell_peers(&attachment).await;
        Ok((attachment, rx))
    }

    /// Tell every mount of the session how many others are attached now, and wait (bounded)
    /// until those attached before `new` know: from then on they report their changes, so
    /// nothing `new` caches can miss one.
    async fn tell_peers(&self, new: &Attachment) {
        let mounts = &self.inner.mounts;
        let others = mounts.others(&new.session, new.attached.key);
        if others.is_empty() {
            // A new mount starts knowing of no other.
            return;
        }
        let count = others.len() as u32;
        let _ = new.attached.commands.try_send(MountCommand::Peers {
            id: mounts.number(),
            count,
        });
        let deadline = Instant::now() + self.config().handoff_timeout;
        let mut waits = Vec::with_capacity(others.len());
        for a in &others {
            let n = mounts.number();
            let (tx, rx) = oneshot::channel();
            a.answers.lock().insert(n, tx);
            let sent = a.commands.try_send(MountCommand::Peers { id: n, count }).is_ok();
            waits.push((a, n, sent, rx));
        }
        for (a, n, sent, rx) in waits {
            let answered = sent && matches!(tokio::time::timeout_at(deadline.into(), rx).await, Ok(Ok(())));
            a.answers.lock().remove(&n);
            if !answered {
                tracing::warn!(session = %new.session, mount = %a.mount, "a mount did not learn of a new mount in time");
            }
        }
    }

    /// Have every mount of `id` but `from` drop what it cached of `paths`, waiting at most the
    /// handoff time; mounts that did not answer are named in a `handoff_incomplete` event.
    async fn invalidate_peers(&self, id: &SessionId, from: &Arc<Attached>, paths: Vec<String>) {
        let mounts = &self.inner.mounts;
        let peers: Vec<_> = mounts
            .others(id, from.key)
            .into_iter()
            .filter(|peer| concerns(&peer.listed.lock(), &paths))
            .collect();
        if peers.is_empty() {
            return;
        }
        let started = Instant::now();
        let deadline = started + self.config().handoff_timeout;
        let paths: Arc<[String]> = paths.into();
        let mut waits = Vec::with_capacity(peers.len());
        for peer in &peers {
            let n = mounts.number();
            let (tx, rx) = oneshot::channel();
            peer.answers.lock().insert(n, tx);
            let cmd = MountCommand::Invalidate {
                id: n,
                paths: paths.clone(),
            };
            let sent = matches!(
                tokio::time::timeout_at(deadline.into(), peer.commands.send(cmd)).await,
                Ok(Ok(()))
            );
            waits.push((peer, n, sent, rx));
        }
        let mut incomplete = Vec::new();
        for (peer, n, sent, rx) in waits {
            let answered = sent && answered_or_excused(from, peer, rx, deadline).await;
            peer.answers.lock().remove(&n);
            if !answered {
                incomplete.push(peer.mount.clone());
            }
        }
        if !incomplete.is_empty() {
            let waited = started.elapsed();
            tracing::warn!(session = %id, mounts = ?incomplete, ?waited, "mounts did not drop what they cached of another mount's change in time");
            self.note_incomplete(id, &incomplete, "invalidate", waited).await;
        }
    }

    /// Bring every change the dirty mounts of `id` hold (the caller's own mount excepted) to the
    /// server before `purpose` reads or freezes the session, waiting at most the configured
    /// handoff time. Mounts that do not answer in time are named in a `handoff_incomplete`
    /// event and in the caller's [`Principal::incomplete_handoffs`].
    pub(crate) async fn recall(&self, p: &Principal, id: &SessionId, purpose: &'static str) {
        let dirty = self.inner.mounts.dirty_except(id, p.mount.as_deref());
        if dirty.is_empty() {
            return;
        }
        let started = Instant::now();
        let patience = self.config().handoff_timeout;
        let mut waits = Vec::with_capacity(dirty.len());
        for a in &dirty {
            let n = self.inner.mounts.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            a.recalls.lock().insert(n, tx);
            let sent = a.commands.try_send(MountCommand::Recall(n)).is_ok();
            waits.push((a.clone(), n, sent, rx));
        }
        let mut incomplete = Vec::new();
        for (a, n, sent, rx) in waits {
            let left = patience.saturating_sub(started.elapsed());
            let answered = sent && matches!(tokio::time::timeout(left, rx).await, Ok(Ok(None)));
            a.recalls.lock().remove(&n);
            if !answered {
                incomplete.push(a.mount.clone());
            }
        }
        if !incomplete.is_empty() {
            let waited = started.elapsed();
            tracing::warn!(session = %id, mounts = ?incomplete, purpose, ?waited, "mounts did not hand their changes over in time");
            p.note_incomplete(&incomplete);
            self.note_incomplete(id, &incomplete, purpose, waited).await;
        }
    }

    /// A listing of `dir` (and with `below` of directories below it) for the caller, when it is
    /// an attached mount: registered now, before the listing is computed.
    pub(crate) fn listing(&self, p: &Principal, id: &SessionId, dir: &str, below: bool) -> Option<Listing> {
        let mount = p.mount.as_deref()?;
        let mounts: Vec<Arc<Attached>> = {
            let map = self.inner.mounts.by_session.lock();
            map.get(id)?.iter().filter(|a| a.mount == mount).cloned().collect()
        };
        if mounts.is_empty() {
            return None;
        }
        let token = self.inner.mounts.number();
        let dir = dir.trim_matches('/').to_owned();
        for a in &mounts {
            a.listed.lock().under_way.push((token, dir.clone(), below));
        }
        Some(Listing { mounts, token })
    }

    /// Before an API change of `id`: a change a mount made before it (a file closed there) must
    /// not land after it and undo it, so dirty mounts are recalled first. Mounts' own changes
    /// skip this: their order with other mounts' is kept by the listing each change starts
    /// from (which recalls), and two mounts recalling each other while each waits for its own
    /// uploads would wait out the timeout.
    pub(crate) async fn recall_before_write(&self, p: &Principal, id: &SessionId) {
        if p.mount.is_none() {
            self.recall(p, id, "write").await;
        }
    }

    /// [`Service::recall`] before a read at `at`: only the live state (`at` is `None`) has
    /// changes mounts may still hold.
    pub(crate) async fn recall_live(&self, p: &Principal, id: &SessionId, at: Option<&str>, purpose: &'static str) {
        if at.is_none() {
            self.recall(p, id, purpose).await;
        }
    }

    async fn note_incomplete(&self, id: &SessionId, mounts: &[String], purpose: &str, waited: Duration) {
        let detail = serde_json::json!({
            "mounts": mounts,
            "for": purpose,
            "waited_ms": waited.as_millis() as u64,
        });
        if let Err(e) = self
            .engine()
            .record_event(id, EventKind::HandoffIncomplete, detail)
            .await
        {
            tracing::warn!(session = %id, error = %e, "cannot record the incomplete handoff");
        }
    }
}
