//! The POSIX details git cannot hold, as operations on a session: owners (chown), special
//! files (mknod: FIFOs, sockets, device nodes), hard links (link) and modification times
//! (set_times). Their rules are the
//! POSIX ones; what they store lives in the overlay and its residuals (see `overlay`), and
//! what keeps a hard link's names one file lives in `links`.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::fs_ops::{check_mode, check_mtime, entry_for, not_found, prepare_parent};
use crate::ids::SessionId;
use crate::meta::{Mutation, NewEvent};
use crate::overlay::{OverlayEntry, Owner, SpecialKind, Timestamp};
use crate::path::SessionPath;
use crate::sessions::now_ns;
use crate::stat::{Stat, stat_node};
use crate::view::{Content, FileKind, Node, View};

impl SpecialKind {
    /// The kind named `name`, or an `InvalidArgument` error naming the ones there are.
    pub fn from_name(name: &str) -> Result<SpecialKind> {
        SpecialKind::parse(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown special file kind '{}': use fifo, socket, char_device or block_device",
                name.escape_debug()
            ))
        })
    }
}

impl Engine {
    /// Set the owner and/or group of `path` itself (a symlink's own, never its target's; the
    /// root's too). `None` leaves that half as it is.
    pub async fn chown(&self, id: &SessionId, path: &str, uid: Option<u32>, gid: Option<u32>) -> Result<Stat> {
        let path = self.parse_path(path)?;
        self.mutate(id, false, move |view, _| plan_chown(view, path, uid, gid))
            .await
    }

    /// Create a FIFO, socket or device node at `path` (which must not exist; its parent must).
    /// `rdev` is kept for devices only.
    pub async fn mknod(&self, id: &SessionId, path: &str, kind: SpecialKind, mode: u32, rdev: u64) -> Result<Stat> {
        let path = self.parse_path(path)?;
        check_mode(mode)?;
        self.mutate(id, false, move |view, _| plan_mknod(view, path, kind, mode, rdev))
            .await
    }

    /// Set the modification time of `path` itself (a symlink's own, never its target's; the
    /// root's too), in nanoseconds since the Unix epoch, as utimens does. Like chmod it is a
    /// change of the session's state: every name of a hard-linked file shows it, and
    /// checkpoints, forks and restores keep it. The access time is not kept.
    pub async fn set_times(&self, id: &SessionId, path: &str, mtime: Timestamp) -> Result<Stat> {
        let path = self.parse_path(path)?;
        check_mtime(mtime)?;
        self.mutate(id, false, move |view, _| plan_set_times(view, path, mtime))
            .await
    }

    /// Give the existing non-directory `from` the new name `to` (a hard link): both names are
    /// then one file (see `links`). Returns the stat of `to`.
    pub async fn link(&self, id: &SessionId, from: &str, to: &str) -> Result<Stat> {
        let from = self.parse_path(from)?;
        let to = self.parse_path(to)?;
        self.mutate(id, false, move |view, _| plan_link(view, from, to)).await
    }
}

/// The overlay entry of the existing `node` at `path` that attributes can be changed on: its
/// own entry, or one that keeps the base's content.
fn attr_entry(view: &View<'_>, path: &SessionPath, node: &Node) -> OverlayEntry {
    match view.overlay.get(path.as_str()) {
        Some(e) if *e != OverlayEntry::Deleted => e.clone(),
        _ if node.is_dir() => OverlayEntry::Dir {
            opaque: false,
            mode: node.mode,
            mtime: node.mtime,
            owner: node.owner,
        },
        _ => OverlayEntry::Attr {
            mode: node.mode,
            mtime: node.mtime,
            owner: node.owner,
            link: node.link,
        },
    }
}

/// Plan setting owner and/or group (`None`: unchanged).
pub(crate) fn plan_chown(
    view: &View<'_>,
    path: SessionPath,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(Mutation, Stat)> {
    let mut node = view.require(&path)?;
    let mut m = Mutation::default();
    if uid.is_none() && gid.is_none() {
        return Ok((m, stat_node(view, &path, &node, false)?));
    }
    let prior = node.owner.unwrap_or_default();
    let owner = Owner {
        uid: uid.or(prior.uid),
        gid: gid.or(prior.gid),
    };
    let mut entry = attr_entry(view, &path, &node);
    entry.set_owner(Some(owner));
    m.upsert.push((path.as_str().to_owned(), entry));
    m.events.push(
        NewEvent::new(EventKind::Chown, Some(path.as_str())).with(serde_json::json!({
            "uid": owner.uid, "gid": owner.gid,
        })),
    );
    node.owner = Some(owner);
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan setting the modification time (already checked).
pub(crate) fn plan_set_times(view: &View<'_>, path: SessionPath, mtime: Timestamp) -> Result<(Mutation, Stat)> {
    let mut node = view.require(&path)?;
    let mut entry = attr_entry(view, &path, &node);
    entry.set_mtime(mtime);
    let mut m = Mutation::default();
    m.upsert.push((path.as_str().to_owned(), entry));
    m.events
        .push(NewEvent::new(EventKind::SetTimes, Some(path.as_str())).with(serde_json::json!({"mtime_ns": mtime})));
    node.mtime = mtime;
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan creating a special file (the mode is already checked).
pub(crate) fn plan_mknod(
    view: &View<'_>,
    path: SessionPath,
    kind: SpecialKind,
    mode: u32,
    rdev: u64,
) -> Result<(Mutation, Stat)> {
    let now = now_ns();
    let mut m = Mutation::default();
    if view.resolve(&path)?.is_some() {
        return Err(Error::AlreadyExists { path: path.to_string() });
    }
    prepare_parent(view, &path, false, now, &mut m)?;
    let rdev = if kind.is_device() { rdev } else { 0 };
    m.upsert.push((
        path.as_str().to_owned(),
        OverlayEntry::Special {
            kind,
            rdev,
            mode,
            mtime: now,
            owner: None,
            link: None,
        },
    ));
    m.events.push(
        NewEvent::new(EventKind::Mknod, Some(path.as_str())).with(serde_json::json!({
            "kind": kind.as_str(), "mode": mode, "rdev": rdev,
        })),
    );
    let node = Node {
        kind: FileKind::special(kind),
        mode,
        mtime: now,
        content: Content::Special { rdev },
        owner: None,
        link: None,
    };
    let stat = stat_node(view, &path, &node, false)?;
    Ok((m, stat))
}

/// Plan a hard link: `from` (an existing non-directory) gets a group id if it has none (one
/// more than the highest in use), and `to` (new, in an existing directory) becomes the same
/// entry with the same id.
pub(crate) fn plan_link(view: &View<'_>, from: SessionPath, to: SessionPath) -> Result<(Mutation, Stat)> {
    let node = view.resolve(&from)?.ok_or_else(|| not_found(&from))?;
    if node.is_dir() {
        // POSIX: EPERM; a surface that speaks errno maps this error of a link to it.
        return Err(Error::IsADirectory { path: from.to_string() });
    }
    if view.resolve(&to)?.is_some() {
        return Err(Error::AlreadyExists { path: to.to_string() });
    }
    let mut m = Mutation::default();
    prepare_parent(view, &to, false, now_ns(), &mut m)?;
    let (link, names) = match node.link {
        Some(l) => (l, view.overlay.link_count(l).max(1)),
        None => {
            let l = view.overlay.next_link();
            let mut e = attr_entry(view, &from, &node);
            e.set_link(Some(l));
            m.upsert.push((from.as_str().to_owned(), e));
            (l, 1)
        }
    };
    let mut linked = node.clone();
    linked.link = Some(link);
    let entry = entry_for(view, &linked)?;
    m.upsert.push((to.as_str().to_owned(), entry));
    m.events.push(
        NewEvent::new(EventKind::Link, Some(to.as_str())).with(serde_json::json!({
            "from": from.as_str(), "link": link,
        })),
    );
    let mut stat = stat_node(view, &to, &linked, false)?;
    stat.nlink = u32::try_from(names + 1).unwrap_or(u32::MAX);
    Ok((m, stat))
}
