//! Freezing a session's view: the git tree a checkpoint would write for it and its residual
//! (the POSIX details git cannot hold), costing what changed since the last freeze.

use gix::ObjectId;
use imbl::OrdSet;

use crate::error::Result;
use crate::overlay::Timestamp;
use crate::residual::{Residual, ResidualNode};
use crate::view::View;

/// The frozen state of a view: its tree, its residual (the shared tree, with the nodes this
/// freeze made), and the mtime of everything else.
pub(crate) struct Frozen {
    pub(crate) tree: ObjectId,
    pub(crate) residual: Residual,
    pub(crate) nodes: Vec<ResidualNode>,
    pub(crate) base_mtime: Timestamp,
    /// Whether anything is left to freeze (content or residual changed since the last freeze).
    pub(crate) pending: bool,
}

/// Freeze the view's changes since its last freeze: a tree edit per changed content, a path
/// copy of the frozen residual per changed path. Nothing else is looked at, so the cost is
/// what changed, whatever the session wrote before. A view without a frozen residual (a
/// pinned copy) freezes its whole overlay.
pub(crate) fn freeze(view: &View<'_>) -> Result<Frozen> {
    let empty = Residual::default();
    let all: OrdSet<String>;
    let (frozen, dirty) = match view.frozen {
        Some(f) => f,
        None => {
            all = view.overlay.iter().map(|(k, _)| k.clone()).collect();
            (&empty, &all)
        }
    };
    let mut edits = Vec::new();
    let mut changes = Vec::with_capacity(dirty.len());
    for path in dirty.iter() {
        match view.overlay.get(path) {
            Some(entry) => {
                // The root's attributes only ever stay in the residual.
                if !path.is_empty() {
                    edits.extend(view.freeze_edit(path, entry)?);
                }
                changes.push((path.clone(), entry.residual()));
            }
            None => changes.push((path.clone(), None)),
        }
    }
    let tree = view.objects.odb.edit_tree(view.base, &edits)?;
    let (residual, nodes) = frozen.apply(changes);
    Ok(Frozen {
        tree,
        residual,
        nodes,
        base_mtime: view.base_mtime,
        pending: !dirty.is_empty(),
    })
}

/// The tree and residual of the view's current state, as a checkpoint would write them (the
/// trees are written; the residual's new nodes are not stored).
pub(crate) fn current_state(view: &View<'_>) -> Result<(ObjectId, Residual)> {
    let frozen = freeze(view)?;
    Ok((frozen.tree, frozen.residual))
}
