//! Expiry, run before each garbage collection: checkpoints a retention policy no longer keeps
//! (the session's own, else the server's; see `retention`) lose their ref and record, and
//! archived sessions unchanged for longer than configured are deleted. What only they reached
//! is then garbage for the collection that follows.

use std::collections::HashMap;
use std::time::Duration;

use gix::ObjectId;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::Result;
use crate::event::EventKind;
use crate::ids::now_millis;
use crate::meta::{
    CheckpointRecord, ListQuery, Mutation, NewEvent, RevisionResidual, RevisionRoot, SessionRecord, SessionState,
};
use crate::retention::CheckpointRetention;
use crate::sessions::ref_prefix;

/// What expires.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExpiryOptions {
    /// The policy of sessions without one of their own (unset: keep every checkpoint).
    pub checkpoints: CheckpointRetention,
    /// Archived sessions unchanged for this long are deleted (`None`: never).
    pub archived_after: Option<Duration>,
}

/// What expired (or, in a dry run, would).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub checkpoints: u64,
    pub sessions: u64,
}

impl Engine {
    /// Apply `opts` to every session; with `dry_run`, only count.
    pub(crate) async fn expire(&self, opts: &ExpiryOptions, dry_run: bool) -> Result<Expired> {
        let now = now_millis();
        let mut expired = Expired::default();
        let mut after = None;
        loop {
            let query = ListQuery {
                after: after.clone(),
                limit: 500,
                ..ListQuery::default()
            };
            let page = self.inner.meta.sessions.list_sessions(&query).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for s in &page {
                let stale = opts
                    .archived_after
                    .is_some_and(|d| s.updated_at <= now.saturating_sub(d.as_millis() as i64));
                if s.state == SessionState::Archived && stale {
                    if !dry_run {
                        match self.delete_session(&s.id).await {
                            Ok(()) => tracing::info!(session = %s.id, "archived session expired"),
                            Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    expired.sessions += 1;
                    continue;
                }
                let policy = if s.retention.is_unset() {
                    opts.checkpoints
                } else {
                    s.retention
                };
                expired.checkpoints += self.expire_checkpoints(s, policy, now, dry_run).await?;
            }
        }
        Ok(expired)
    }

    /// Drop the checkpoints of `s` that `policy` no longer keeps; how many. The checkpoint
    /// the session's head is never dropped (it is its history's tip).
    async fn expire_checkpoints(
        &self,
        s: &crate::meta::SessionRecord,
        policy: CheckpointRetention,
        now: i64,
        dry_run: bool,
    ) -> Result<u64> {
        if policy.is_unset() {
            return Ok(0);
        }
        let revisions = &self.inner.meta.revisions;
        let expired_of = |cps: &[CheckpointRecord], head: Option<ObjectId>| -> Vec<u64> {
            let taken: Vec<(u64, i64)> = cps.iter().map(|c| (c.number, c.created_at)).collect();
            let mut numbers = policy.expired(&taken, now);
            numbers.retain(|n| !cps.iter().any(|c| c.number == *n && Some(c.commit) == head));
            numbers
        };
        let cps = revisions.list_checkpoints(&s.id).await?;
        let found = expired_of(&cps, s.head).len() as u64;
        if dry_run {
            return Ok(found);
        }
        if found == 0 {
            // A crash between the records and the refs of an earlier expiry leaves refs that
            // name dropped or rewritten checkpoints (keeping the old commits alive): fix them.
            if !self.stray_refs(&s.id, &cps).await?.is_empty() {
                let h = self.handle(&s.id).await?;
                let _guard = h.write.lock().await;
                let cps = revisions.list_checkpoints(&s.id).await?;
                for (name, want) in self.stray_refs(&s.id, &cps).await? {
                    let objects = self.inner.objects.clone();
                    crate::blocking::blocking(move || {
                        objects.odb.delete_ref(&name)?;
                        match want {
                            Some(commit) => objects.odb.set_ref(&name, commit, "checkpoint: ref repaired"),
                            None => Ok(()),
                        }
                    })
                    .await?;
                }
            }
            return Ok(0);
        }
        // Under the session's write lock: no checkpoint is taken meanwhile.
        let h = match self.handle(&s.id).await {
            Ok(h) => h,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let _guard = h.write.lock().await;
        let rec = {
            let live = h.live.read();
            if live.deleted {
                return Ok(0);
            }
            live.record.clone()
        };
        let cps = revisions.list_checkpoints(&s.id).await?;
        let numbers = expired_of(&cps, rec.head);
        if numbers.is_empty() {
            return Ok(0);
        }
        let objects = self.inner.objects.clone();
        let plan = {
            let (cps, numbers, head) = (cps.clone(), numbers.clone(), rec.head);
            crate::blocking::blocking(move || rewrite_chain(&objects, &cps, &numbers, head)).await?
        };
        // The rewritten checkpoints keep their recorded POSIX details, under their new ids.
        let mut mutations = Vec::with_capacity(plan.rewritten.len() + 1);
        for (cp, new_commit) in &plan.rewritten {
            let mut m = Mutation {
                checkpoint: Some(CheckpointRecord {
                    commit: *new_commit,
                    ..cp.clone()
                }),
                ..Default::default()
            };
            if let Some(root) = revisions.revision_root(&cp.commit).await? {
                m.revision_root = Some(RevisionRoot {
                    commit: *new_commit,
                    ..root
                });
            } else if let Some(list) = revisions.revision_residual(&cp.commit).await? {
                m.revision = Some(RevisionResidual {
                    commit: *new_commit,
                    ..list
                });
            }
            mutations.push(m);
        }
        let mut last = Mutation {
            drop_checkpoints: numbers.clone(),
            ..Default::default()
        };
        if plan.head != rec.head {
            last.record = Some(SessionRecord {
                head: plan.head,
                ..rec.clone()
            });
        }
        last.events.push(NewEvent::new(EventKind::Updated, None).with(serde_json::json!({
            "expired_checkpoints": numbers,
            "rewritten_checkpoints": plan.rewritten.iter().map(|(cp, c)| {
                serde_json::json!({"number": cp.number, "was": cp.commit.to_hex().to_string(), "commit": c.to_hex().to_string()})
            }).collect::<Vec<_>>(),
            "retention": policy,
        })));
        mutations.push(last);
        self.stamp(mutations.iter_mut().flat_map(|m| m.events.iter_mut()));
        let noted =
            (self.inner.objects.gc).note_references(|| mutations.iter().flat_map(crate::gc_barrier::references));
        let seq = self.inner.meta.sessions.apply_all(&s.id, mutations.clone()).await?;
        drop(noted);
        {
            let mut live = h.live.write();
            for m in &mutations {
                live.apply_as_of(m, seq);
            }
        }
        // Refs last: until they move, they keep the old commits (and what they reach) alive.
        let objects = self.inner.objects.clone();
        let prefix = ref_prefix(&s.id);
        let moved: Vec<(u64, ObjectId)> = plan.rewritten.iter().map(|(cp, c)| (cp.number, *c)).collect();
        let dropped = numbers.clone();
        crate::blocking::blocking(move || {
            for (n, commit) in moved {
                // Dropped with its log first: a log entry naming the old commit would name an
                // object the collection removes.
                let name = format!("{prefix}checkpoints/{n}");
                objects.odb.delete_ref(&name)?;
                objects
                    .odb
                    .set_ref(&name, commit, "checkpoint: history rewritten by retention")?;
            }
            dropped
                .iter()
                .try_for_each(|n| objects.odb.delete_ref(&format!("{prefix}checkpoints/{n}")))
        })
        .await?;
        self.inner.changes.notify(&s.id);
        tracing::info!(session = %s.id, checkpoints = ?numbers, rewritten = plan.rewritten.len(), "checkpoints expired");
        Ok(numbers.len() as u64)
    }
}

impl Engine {
    /// The checkpoint refs of `id` that disagree with its records `cps`: each with the commit
    /// it should name (`None`: no checkpoint of that number, the ref should go).
    async fn stray_refs(
        &self,
        id: &crate::ids::SessionId,
        cps: &[CheckpointRecord],
    ) -> Result<Vec<(String, Option<ObjectId>)>> {
        let objects = self.inner.objects.clone();
        let prefix = format!("{}checkpoints/", ref_prefix(id));
        let rows: HashMap<u64, ObjectId> = cps.iter().map(|c| (c.number, c.commit)).collect();
        crate::blocking::blocking(move || {
            let refs = objects.odb.list_refs(&prefix)?;
            Ok(refs
                .into_iter()
                .filter_map(|(name, oid)| {
                    let number = name.strip_prefix(&prefix)?.parse::<u64>().ok()?;
                    match rows.get(&number) {
                        Some(c) if *c == oid => None,
                        want => Some((name, want.copied())),
                    }
                })
                .collect())
        })
        .await
    }
}

/// The session's history once expired checkpoints leave it.
struct Rewritten {
    /// Kept checkpoints given a new commit (the same tree, message and time; a parent that
    /// skips the expired ones), oldest first.
    rewritten: Vec<(CheckpointRecord, ObjectId)>,
    /// The session's new head.
    head: Option<ObjectId>,
}

/// Checkpoints chain by parent: the newest reaches every older one, so dropping a ref would
/// reclaim nothing. Rewrite the run of this session's checkpoints that ends at its head,
/// skipping the expired ones, so that only the kept ones stay reachable. An expired checkpoint
/// outside that run (below a commit of the branch, or reached by another session's fork) loses
/// its ref and record; its objects stay while something else reaches them.
fn rewrite_chain(
    objects: &crate::objects::Objects,
    cps: &[CheckpointRecord],
    expired: &[u64],
    head: Option<ObjectId>,
) -> Result<Rewritten> {
    let by_commit: HashMap<ObjectId, &CheckpointRecord> = cps.iter().map(|c| (c.commit, c)).collect();
    // Newest first, from the head down while the commits are this session's checkpoints.
    let mut run = Vec::new();
    let mut at = head;
    while let Some(c) = at {
        let Some(cp) = by_commit.get(&c) else { break };
        if run.len() > cps.len() {
            break; // a cycle cannot happen in git; never loop on bad data
        }
        run.push(*cp);
        at = objects.odb.read_commit(&c)?.parents.first().copied();
    }
    let mut parent = at;
    let mut changed = false;
    let mut rewritten = Vec::new();
    for cp in run.into_iter().rev() {
        if expired.contains(&cp.number) {
            changed = true;
            continue;
        }
        if !changed {
            parent = Some(cp.commit);
            continue;
        }
        let info = objects.odb.read_commit(&cp.commit)?;
        let parents: Vec<ObjectId> = parent.into_iter().collect();
        let commit = objects
            .odb
            .write_commit(info.tree, &parents, &cp.message, None, info.committer.time)?;
        rewritten.push((cp.clone(), commit));
        parent = Some(commit);
    }
    Ok(Rewritten {
        rewritten,
        head: if changed { parent } else { head },
    })
}
