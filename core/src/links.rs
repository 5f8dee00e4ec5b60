//! Hard links: the names of one entry share one hard-link group id (`link` on their overlay
//! entries; [`crate::overlay::Overlay`] indexes the members of each group). This module owns
//! the one rule that makes them one file: whatever a mutation writes to one member's content
//! or attributes it writes to every other member in the same mutation. Plans only keep the
//! group id on the entries they rebuild; [`propagate`] does the rest, for single calls and
//! batches alike, so no plan has to know about the other names.

use std::collections::HashSet;

use crate::meta::Mutation;
use crate::overlay::{Overlay, OverlayEntry};

/// What member `current` of a group becomes when another member is written as `written`: the
/// same content entry, or (for attributes written over base content) its own entry with the
/// new attributes.
fn shared(written: &OverlayEntry, current: &OverlayEntry) -> OverlayEntry {
    let OverlayEntry::Attr {
        mode,
        mtime,
        owner,
        link,
    } = *written
    else {
        return written.clone();
    };
    let mut out = current.clone();
    match &mut out {
        OverlayEntry::File { mode: m, mtime: t, .. }
        | OverlayEntry::Attr { mode: m, mtime: t, .. }
        | OverlayEntry::Special { mode: m, mtime: t, .. } => {
            *m = mode;
            *t = mtime;
        }
        OverlayEntry::Symlink { mtime: t, .. } => *t = mtime,
        OverlayEntry::Deleted | OverlayEntry::Dir { .. } | OverlayEntry::Graft { .. } => {}
    }
    out.set_owner(owner);
    out.set_link(link);
    out
}

/// Extend `m` (planned against `overlay`) so that every member of a hard-link group it writes
/// is written through all the group's other names. Members the mutation itself writes, removes
/// or removes below are left to it. The event of each write lists the other names it reached
/// (`"linked": [path, ...]`), so a watcher knows what else changed.
pub(crate) fn propagate(overlay: &Overlay, m: &mut Mutation) {
    if m.clear_overlay || m.residual.is_some() || !overlay.has_links() {
        return;
    }
    let touched: HashSet<&str> = m
        .upsert
        .iter()
        .map(|(k, _)| k.as_str())
        .chain(m.remove.iter().map(String::as_str))
        .collect();
    let removed_below = |q: &str| {
        m.remove_below
            .iter()
            .any(|d| d.is_empty() || (q.len() > d.len() && q.starts_with(d.as_str()) && q.as_bytes()[d.len()] == b'/'))
    };
    let mut extra: Vec<(String, OverlayEntry)> = Vec::new();
    let mut reached: Vec<(String, Vec<String>)> = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    for (p, written) in &m.upsert {
        let Some(link) = written.link() else { continue };
        let mut names = Vec::new();
        for q in overlay.link_members(link) {
            if q == p || touched.contains(q.as_str()) || removed_below(q) || done.contains(q) {
                continue;
            }
            let Some(current) = overlay.get(q) else { continue };
            let new = shared(written, current);
            done.insert(q.clone());
            if &new != current {
                names.push(q.clone());
                extra.push((q.clone(), new));
            }
        }
        if !names.is_empty() {
            reached.push((p.clone(), names));
        }
    }
    for (p, names) in reached {
        if let Some(ev) = m.events.iter_mut().find(|e| e.path.as_deref() == Some(p.as_str())) {
            if !ev.detail.is_object() {
                ev.detail = serde_json::json!({});
            }
            if let Some(obj) = ev.detail.as_object_mut() {
                obj.insert("linked".to_owned(), serde_json::json!(names));
            }
        }
    }
    m.upsert.extend(extra);
}
