//! Freezing a session's overlay into git trees, and everything built on it: fork, checkpoint,
//! commit, restore, log. A freeze costs what changed since the last one, never the base's size.

use gix::ObjectId;
use serde::Serialize;

use crate::config::Identity;
use crate::engine::{Engine, Touch};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::freeze::{Frozen, freeze};
use crate::ids::{SessionId, now_millis};
use crate::meta::{CheckpointRecord, Mutation, NewEvent, RevisionResidual, RevisionRoot, SessionRecord};
use crate::odb::CommitInfo;
use crate::revision;
use crate::revision_cache::Revision;
use crate::sessions::{CreateOptions, ref_prefix, validate_branch};
use crate::view::View;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointOutcome {
    #[serde(flatten)]
    pub checkpoint: CheckpointRecord,
    #[serde(rename = "ref")]
    pub ref_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreOutcome {
    /// The checkpoint that saved the discarded state (none when nothing would be lost).
    pub saved: Option<CheckpointOutcome>,
    #[serde(serialize_with = "crate::serde_oid")]
    pub restored_commit: ObjectId,
    #[serde(serialize_with = "crate::serde_oid")]
    pub tree: ObjectId,
}

/// Most entries a revision's residual is recorded with as a list (as before residuals were
/// shared): a small residual costs less inline than as nodes, and a fork or restore of it
/// writes at most this many rows. A larger one is recorded by its root.
const LISTED_RESIDUAL: usize = 64;

impl Frozen {
    /// Record in `m` what a commit of this state holds, so reads at it, restores and forks of
    /// it show the same POSIX details: the residual (by its root, or listed when small) and
    /// the one base mtime (never a row per untouched file).
    fn record(&self, commit: ObjectId, m: &mut Mutation) {
        if self.residual.len() <= LISTED_RESIDUAL {
            m.revision = Some(RevisionResidual {
                commit,
                residual: self
                    .residual
                    .map()
                    .iter()
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect(),
                base_mtime: Some(self.base_mtime),
            });
        } else {
            m.revision_root = Some(RevisionRoot {
                commit,
                root: self.residual.root(),
                base_mtime: self.base_mtime,
            });
        }
    }
}

/// Fold a freeze into a mutation that rebases the session onto the frozen tree and residual:
/// the nodes the freeze made, the new root, no rows left.
fn rebase(frozen: &Frozen, record: &mut SessionRecord, m: &mut Mutation) {
    record.base_tree = frozen.tree;
    m.nodes = frozen.nodes.clone();
    m.residual = Some(frozen.residual.clone());
}

/// Write checkpoint `number` of `record` at `tree` with `head` as parent.
fn write_checkpoint(
    view: &View<'_>,
    record: &SessionRecord,
    frozen: &Frozen,
    message: &str,
) -> Result<CheckpointOutcome> {
    let tree = frozen.tree;
    let number = record.checkpoint_seq + 1;
    let now = now_millis();
    let parents: Vec<ObjectId> = record.head.into_iter().collect();
    let commit = view
        .objects
        .odb
        .write_commit(tree, &parents, message, None, now / 1000)?;
    let ref_name = format!("{}checkpoints/{number}", ref_prefix(&record.id));
    view.objects
        .odb
        .set_ref(&ref_name, commit, &format!("checkpoint: {}", first_line(message)))?;
    Ok(CheckpointOutcome {
        checkpoint: CheckpointRecord {
            number,
            commit,
            tree,
            message: message.to_owned(),
            created_at: now,
        },
        ref_name,
    })
}

/// Attempts of a restore whose revision or head keeps moving.
const RESTORE_ATTEMPTS: usize = 3;

/// Plan setting the session to `target` (resolved from `rev`, with state `target_state`),
/// checkpointing the current state first unless it equals the target or the head (`head_state`).
fn plan_restore(
    view: &View<'_>,
    rec: &SessionRecord,
    rev: &str,
    target: ObjectId,
    target_state: &Revision,
    head_state: Option<&Revision>,
) -> Result<(Mutation, RestoreOutcome)> {
    let frozen = freeze(view)?;
    // A revision without a recorded residual equals a state with the same tree, whatever its
    // POSIX details. Residual trees are equal when their roots are (same contents, same tree).
    let same_as = |state: Option<&Revision>| {
        state.is_some_and(|s| {
            s.tree == frozen.tree
                && (!s.recorded || (s.residual == frozen.residual && s.base_mtime == frozen.base_mtime))
        })
    };
    let would_lose = !same_as(Some(target_state)) && !same_as(head_state);
    let mut rec = rec.clone();
    let mut m = Mutation::default();
    let saved = if would_lose {
        let cp = write_checkpoint(view, &rec, &frozen, &format!("saved before restoring {rev}"))?;
        rec.checkpoint_seq = cp.checkpoint.number;
        m.nodes = frozen.nodes.clone();
        frozen.record(cp.checkpoint.commit, &mut m);
        m.checkpoint = Some(cp.checkpoint.clone());
        Some(cp)
    } else {
        None
    };
    rec.base_tree = target_state.tree;
    rec.head = Some(target);
    // Every mtime as the revision showed it: entries in its residual carry their own, the
    // others the base mtime recorded with it (the commit time for a revision without a record).
    rec.base_mtime = target_state.base_mtime;
    if target_state.legacy {
        // Recorded as a list (small, or by an older version): its nodes may not be stored, so
        // the session gets rows, as before (and shares a tree from its next freeze on).
        m.clear_overlay = true;
        m.upsert = target_state.residual();
    } else {
        m.residual = Some(target_state.residual.clone());
    }
    m.record = Some(rec);
    let outcome = RestoreOutcome {
        saved,
        restored_commit: target,
        tree: target_state.tree,
    };
    m.events
        .push(NewEvent::new(EventKind::Restore, None).with(serde_json::to_value(&outcome).unwrap_or_default()));
    Ok((m, outcome))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

impl Engine {
    /// Fork a session: O(changes since its last freeze), independent of the base's size.
    pub(crate) async fn fork(
        &self,
        parent: &SessionId,
        at: Option<&str>,
        opts: CreateOptions,
    ) -> Result<SessionRecord> {
        let (base, head, base_mtime, residual, rows, branch, (quota, retention)) = match at {
            Some(rev) => {
                let rev = rev.to_owned();
                let (commit, branch, inherited) = self
                    .read_view(parent, move |view, rec| {
                        Ok((
                            revision::resolve(view.objects, rec, &rev)?,
                            rec.branch.clone(),
                            (rec.quota, rec.retention),
                        ))
                    })
                    .await?;
                let state = self.revision(commit).await?;
                if state.legacy {
                    // Recorded as a list (small, or by an older version): rows, as before.
                    (
                        state.tree,
                        Some(commit),
                        state.base_mtime,
                        None,
                        state.residual(),
                        branch,
                        inherited,
                    )
                } else {
                    let shared = state.residual.clone();
                    (
                        state.tree,
                        Some(commit),
                        state.base_mtime,
                        Some(shared),
                        Vec::new(),
                        branch,
                        inherited,
                    )
                }
            }
            None => {
                self.mutate_as(parent, true, Touch::No, |view, rec| {
                    let frozen = freeze(view)?;
                    let mut m = Mutation::default();
                    let mut rec = rec.clone();
                    let out = (
                        frozen.tree,
                        rec.head,
                        rec.base_mtime,
                        Some(frozen.residual.clone()),
                        Vec::new(),
                        rec.branch.clone(),
                        (rec.quota, rec.retention),
                    );
                    // Freeze what changed since the last freeze; the child shares the result.
                    if frozen.pending {
                        rebase(&frozen, &mut rec, &mut m);
                        m.record = Some(rec);
                    }
                    Ok((m, out))
                })
                .await?
            }
        };
        let opts = CreateOptions {
            branch: opts.branch.clone().or(Some(branch)),
            quota: opts.quota.or(Some(quota)),
            retention: opts.retention.or(Some(retention)),
            ..opts
        };
        let mut record = self.new_record(base, head, Some(parent.clone()), base_mtime, &opts)?;
        // What the fork shares with its parent: the state it starts from.
        record.origin_tree = Some(base);
        let event = NewEvent::new(EventKind::Created, None)
            .with(serde_json::json!({"source": "session", "parent": parent, "at": at}));
        let child = match residual {
            Some(shared) => self.insert_sharing(record, shared, event).await?,
            None => self.insert(record, rows, event).await?,
        };
        // Tell the parent's watchers too; this is not part of the child's creation transaction.
        let mut note = NewEvent::new(EventKind::Forked, None).with(serde_json::json!({"child": child.id}));
        self.stamp([&mut note]);
        self.inner
            .meta
            .sessions
            .apply(
                parent,
                Mutation {
                    events: vec![note],
                    ..Default::default()
                },
            )
            .await?;
        Ok(child)
    }

    /// Freeze what changed since the last freeze into the session's base, recording nothing
    /// else (no commit, no event; what a fork does to its parent): every later freeze (a usage
    /// figure, a quota's exact measure, a fork, a checkpoint) then costs only what changes
    /// after it. The engine does this in the background once a session holds
    /// [`crate::engine::FREEZE_AT`] changes since its last freeze.
    pub(crate) async fn freeze_session(&self, id: &SessionId) -> Result<()> {
        self.mutate_as(id, true, Touch::No, |view, rec| {
            let frozen = freeze(view)?;
            let mut m = Mutation::default();
            if frozen.pending {
                let mut rec = rec.clone();
                rebase(&frozen, &mut rec, &mut m);
                m.record = Some(rec);
            }
            Ok((m, ()))
        })
        .await
    }

    /// Freeze the current state into a commit and `refs/aether/sessions/<id>/checkpoints/<n>`.
    pub async fn checkpoint(&self, id: &SessionId, message: Option<String>) -> Result<CheckpointOutcome> {
        self.mutate(id, false, move |view, rec| {
            let frozen = freeze(view)?;
            let mut rec = rec.clone();
            let message = message.unwrap_or_else(|| format!("checkpoint {}", rec.checkpoint_seq + 1));
            let cp = write_checkpoint(view, &rec, &frozen, &message)?;
            let mut m = Mutation::default();
            rebase(&frozen, &mut rec, &mut m);
            rec.head = Some(cp.checkpoint.commit);
            rec.checkpoint_seq = cp.checkpoint.number;
            m.record = Some(rec);
            frozen.record(cp.checkpoint.commit, &mut m);
            m.checkpoint = Some(cp.checkpoint.clone());
            m.events
                .push(NewEvent::new(EventKind::Checkpoint, None).with(serde_json::to_value(&cp).unwrap_or_default()));
            Ok((m, cp))
        })
        .await
    }

    pub async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>> {
        self.handle(id).await?;
        self.inner.meta.revisions.list_checkpoints(id).await
    }

    /// Set the session's state to `rev`, after checkpointing whatever it would discard. A
    /// revision the engine wrote comes back exactly, empty directories and mtimes included.
    pub async fn restore(&self, id: &SessionId, rev: &str) -> Result<RestoreOutcome> {
        // The residuals are fetched before taking the write lock (the store is async); if the
        // revision or the head moved meanwhile, fetch again.
        for _ in 0..RESTORE_ATTEMPTS {
            let r = rev.to_owned();
            let (target, head) = self
                .read_view(id, move |view, rec| {
                    Ok((revision::resolve(view.objects, rec, &r)?, rec.head))
                })
                .await?;
            let target_state = self.revision(target).await?;
            let head_state = match head {
                Some(h) => Some(self.revision(h).await?),
                None => None,
            };
            let r = rev.to_owned();
            let outcome = self
                .mutate(id, false, move |view, rec| {
                    if revision::resolve(view.objects, rec, &r)? != target || rec.head != head {
                        // Moved since the residuals were fetched: change nothing, fetch again.
                        return Ok((Mutation::default(), None));
                    }
                    plan_restore(view, rec, &r, target, &target_state, head_state.as_deref()).map(|(m, o)| (m, Some(o)))
                })
                .await?;
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
        Err(Error::Conflict(format!(
            "session {id} kept changing while restoring '{}'; try again",
            rev.escape_debug()
        )))
    }

    /// Commit the current state on the session's branch (or `branch`) with a message and author.
    pub async fn commit(
        &self,
        id: &SessionId,
        message: String,
        author: Option<Identity>,
        branch: Option<String>,
    ) -> Result<CommitInfo> {
        if message.trim().is_empty() {
            return Err(Error::InvalidArgument("a commit needs a message".into()));
        }
        if let Some(a) = &author {
            let bad = |s: &str| s.is_empty() || s.len() > 256 || s.contains(['<', '>', '\n', '\0']);
            if bad(&a.name) || bad(&a.email) {
                return Err(Error::InvalidArgument(
                    "author name and email must be 1-256 characters without <, > or newlines".into(),
                ));
            }
        }
        if let Some(b) = &branch {
            validate_branch(b)?;
        }
        self.mutate(id, false, move |view, rec| {
            let frozen = freeze(view)?;
            let mut rec = rec.clone();
            let branch = branch.unwrap_or_else(|| rec.branch.clone());
            let ref_name = format!("{}heads/{branch}", ref_prefix(&rec.id));
            let parent = match view.objects.odb.find_ref(&ref_name)? {
                Some(tip) => Some(tip),
                None => rec.head,
            };
            let parents: Vec<ObjectId> = parent.into_iter().collect();
            let commit =
                view.objects
                    .odb
                    .write_commit(frozen.tree, &parents, &message, author.as_ref(), now_millis() / 1000)?;
            view.objects
                .odb
                .set_ref(&ref_name, commit, &format!("commit: {}", first_line(&message)))?;
            let mut m = Mutation::default();
            rebase(&frozen, &mut rec, &mut m);
            rec.head = Some(commit);
            rec.commits += 1;
            m.record = Some(rec);
            frozen.record(commit, &mut m);
            let info = view.objects.odb.read_commit(&commit)?;
            m.events
                .push(NewEvent::new(EventKind::Commit, None).with(serde_json::json!({
                    "commit": commit.to_hex().to_string(), "branch": branch, "message": message,
                })));
            Ok((m, info))
        })
        .await
    }

    /// Commits reachable from `rev` (default: the session's branch tip, else its head), newest
    /// first, `limit` at most, starting after `after` when given.
    pub async fn log(
        &self,
        id: &SessionId,
        rev: Option<String>,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>> {
        self.read_view(id, move |view, rec| {
            let start = match rev {
                Some(r) => Some(revision::resolve(view.objects, rec, &r)?),
                None => {
                    let branch = format!("{}heads/{}", ref_prefix(&rec.id), rec.branch);
                    view.objects.odb.find_ref(&branch)?.or(rec.head)
                }
            };
            let mut out = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let mut queue: std::collections::BinaryHeap<(i64, ObjectId)> = std::collections::BinaryHeap::new();
            let mut skipping = after.is_some();
            if let Some(s) = start {
                let c = view.objects.odb.read_commit(&s)?;
                queue.push((c.committer.time, s));
            }
            while let Some((_, oid)) = queue.pop() {
                if !seen.insert(oid) {
                    continue;
                }
                let info = view.objects.odb.read_commit(&oid)?;
                for p in &info.parents {
                    if !seen.contains(p) {
                        let pc = view.objects.odb.read_commit(p)?;
                        queue.push((pc.committer.time, *p));
                    }
                }
                if skipping {
                    skipping = Some(oid) != after;
                    continue;
                }
                out.push(info);
                if out.len() >= limit.clamp(1, 1000) {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn show_commit(&self, id: &SessionId, rev: &str) -> Result<CommitInfo> {
        let rev = rev.to_owned();
        self.read_view(id, move |view, rec| {
            let oid = revision::resolve(view.objects, rec, &rev)?;
            view.objects.odb.read_commit(&oid)
        })
        .await
    }

    /// The tree id of the session's current state, freezing nothing: the id `git write-tree`
    /// would compute for the same files.
    pub async fn current_tree(&self, id: &SessionId) -> Result<ObjectId> {
        self.read_view(id, |view, _| Ok(freeze(view)?.tree)).await
    }
}
