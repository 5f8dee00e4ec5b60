//! Enforcement of per-session quotas (see `quota` for the rule).

use gix::ObjectId;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::meta::{Mutation, SessionRecord};
use crate::objects::Objects;
use crate::overlay::{Overlay, OverlayEntry};
use crate::quota::Quota;
use crate::residual::Residual;
use crate::usage::UsageMemo;

/// An upper bound of a session's own `(bytes, files)`, or `None` when it must be measured.
pub(crate) type Bound = Option<(u64, u64)>;

/// What `m` may add to the session's own usage, as `(bytes, files)`; `None` when that cannot be
/// bounded without measuring (the base or the whole overlay is replaced).
fn may_add(
    record: &SessionRecord,
    overlay: &Overlay,
    m: &Mutation,
    objects: &Objects,
    memo: &UsageMemo,
) -> Result<Option<(u64, u64)>> {
    let replaces_base = m.record.as_ref().is_some_and(|r| r.base_tree != record.base_tree);
    if m.residual.is_some() || m.clear_overlay || replaces_base {
        return Ok(None);
    }
    let (mut bytes, mut files) = (0u64, 0u64);
    for (path, entry) in &m.upsert {
        match entry {
            OverlayEntry::File { oid, size, .. } => {
                let same = matches!(overlay.get(path), Some(OverlayEntry::File { oid: was, .. }) if was == oid);
                if !same {
                    bytes = bytes.saturating_add(*size);
                    files += 1;
                }
            }
            OverlayEntry::Symlink { .. } => files += 1,
            OverlayEntry::Graft { tree, .. } => {
                let t = memo.totals(objects, *tree)?;
                bytes = bytes.saturating_add(t.bytes);
                files = files.saturating_add(t.files + t.symlinks);
            }
            OverlayEntry::Deleted
            | OverlayEntry::Dir { .. }
            | OverlayEntry::Attr { .. }
            | OverlayEntry::Special { .. } => {}
        }
    }
    Ok(Some((bytes, files)))
}

/// The session a change is checked for: its id, its state before the change, and where its
/// quota's bound is kept.
pub(crate) struct Checked<'a> {
    pub id: &'a SessionId,
    pub record: &'a SessionRecord,
    pub overlay: &'a Overlay,
    pub bound: &'a Mutex<Bound>,
}

/// Refuse `m` (planned against `s`, sealed) if it would take the session over its quota;
/// `after` measures the state `m` would leave (its tree and residual). Call under the session's
/// write lock; the bound is moved for the change to go ahead (the caller forgets it if the
/// change then fails to be stored).
pub(crate) fn check(
    s: Checked<'_>,
    m: &Mutation,
    objects: &Objects,
    memo: &UsageMemo,
    after: impl FnOnce() -> Result<(ObjectId, Residual)>,
) -> Result<()> {
    let quota: Quota = m.record.as_ref().map_or(s.record.quota, |r| r.quota);
    if quota.is_unlimited() {
        return Ok(());
    }
    let mut bound = s.bound.lock();
    let Some((bytes, files)) = may_add(s.record, s.overlay, m, objects, memo)? else {
        *bound = None;
        return Ok(());
    };
    if bytes == 0 && files == 0 {
        return Ok(());
    }
    if let Some((b, f)) = *bound {
        let (b, f) = (b.saturating_add(bytes), f.saturating_add(files));
        if quota.over(b, f).is_none() {
            *bound = Some((b, f));
            return Ok(());
        }
    }
    let (tree, residual) = after()?;
    let origin = m.record.as_ref().map_or(s.record.origin_tree, |r| r.origin_tree);
    let own = memo.state(objects, tree, &residual, origin)?.own;
    if let Some((what, limit, used)) = quota.over(own.bytes, own.files) {
        return Err(Error::QuotaExceeded {
            session: s.id.to_string(),
            what,
            limit,
            used,
        });
    }
    *bound = Some((own.bytes, own.files));
    Ok(())
}
