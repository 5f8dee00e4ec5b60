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
//! The common case costs one map lookup: no mount is attached, or none is dirty.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aether_core::{EventKind, SessionId};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

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
}

/// What the service asks of an attached mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountCommand {
    /// The dirty report with this number is known.
    Ack(u64),
    /// Send every change accepted so far, then answer `Recalled` with this number.
    Recall(u64),
}

struct Attached {
    /// Tells attachments of one mount id apart (a mount that reconnects attaches anew).
    key: u64,
    mount: String,
    dirty: AtomicBool,
    commands: mpsc::Sender<MountCommand>,
    recalls: Mutex<HashMap<u64, oneshot::Sender<Option<String>>>>,
}

/// The mounts attached to each session.
#[derive(Default)]
pub(crate) struct Mounts {
    by_session: Mutex<HashMap<SessionId, Vec<Arc<Attached>>>>,
    next: AtomicU64,
}

impl Mounts {
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

    fn detach(&self, id: &SessionId, key: u64) {
        let mut map = self.by_session.lock();
        if let Some(list) = map.get_mut(id) {
            list.retain(|a| a.key != key);
            if list.is_empty() {
                map.remove(id);
            }
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
            MountReport::Dirty(n) => {
                a.dirty.store(true, Ordering::SeqCst);
                // The mount waits for this before its system call returns.
                a.commands
                    .send(MountCommand::Ack(n))
                    .await
                    .map_err(|_| ServiceError::unavailable("the mount's channel is closed"))?;
            }
            MountReport::Clean(_) => a.dirty.store(false, Ordering::SeqCst),
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
    /// Attach the calling mount (its principal names it) to `session`, which it may change.
    pub async fn attach_mount(&self, p: &Principal, session: &str) -> Result<(Attachment, Commands)> {
        let mount = p
            .mount
            .clone()
            .ok_or_else(|| ServiceError::invalid("only a mount attaches: send its id as aether-mount"))?;
        let id = self.session(p, session, Access::Write)?;
        self.engine().get_session(&id).await?;
        let (tx, rx) = mpsc::channel(64);
        let mounts = &self.inner.mounts;
        let attached = Arc::new(Attached {
            key: mounts.next.fetch_add(1, Ordering::Relaxed),
            mount,
            dirty: AtomicBool::new(false),
            commands: tx,
            recalls: Mutex::default(),
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
        Ok((attachment, rx))
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
