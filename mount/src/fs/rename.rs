//! `rename`: moving an entry locally at once, and the renames the server gets for it (three,
//! through a temporary name, for an exchange).

use std::ffi::OsStr;
use std::time::SystemTime;

use fuser::RenameFlags;

use super::{AetherFs, FsError, R};
use crate::backend::RemoteOp;
use crate::tree::Node;

impl AetherFs {
    pub(super) fn do_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> R<()> {
        self.writable()?;
        Self::check_name(newname)?;
        let src = self.child(parent, name)?.ok_or(FsError::NotFound)?;
        let dest = self.child(newparent, newname)?;
        if let Some(d) = dest
            && self.tree.lock().get(d).is_some_and(Node::is_dir)
        {
            self.ensure_listed(d)?;
        }
        let mut tree = self.tree.lock();
        // Re-check under the lock: the listing may have changed between the calls above.
        if tree.lookup(parent, name) != Some(src) || tree.lookup(newparent, newname) != dest {
            return Err(FsError::Changed);
        }
        let from = tree.child_path(parent, name).ok_or(FsError::NotFound)?;
        let to = tree.child_path(newparent, newname).ok_or(FsError::NotFound)?;
        let src_dir = tree.get(src).is_some_and(Node::is_dir);
        if src_dir && tree.is_within(newparent, src) {
            return Err(FsError::Invalid);
        }
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let d = dest.ok_or(FsError::NotFound)?;
            if tree.get(d).is_some_and(Node::is_dir) && tree.is_within(parent, d) {
                return Err(FsError::Invalid);
            }
            // Files with bytes the server has not seen yet (open, never flushed) go up under
            // their current names first: the renames below need something to move.
            self.queue_upload(&mut tree, src);
            self.queue_upload(&mut tree, d);
            // Files bound to either name (replaced elsewhere while open) lose it: the names now
            // hold what this rename put there.
            tree.unbind(parent, name);
            tree.unbind(newparent, newname);
            // Swap the two entries locally; the server gets three renames through a temporary name.
            if let Some(c) = tree.children_mut(parent) {
                c.insert(name.to_owned(), d);
            }
            if let Some(c) = tree.children_mut(newparent) {
                c.insert(newname.to_owned(), src);
            }
            tree.rename_name(src, (parent, name), (newparent, newname.to_owned()));
            tree.rename_name(d, (newparent, newname), (parent, name.to_owned()));
            let tmp = format!("{from}.aether-exchange-{}", crate::now_ns());
            let touched = [parent, newparent, src, d];
            self.queue_op(
                &mut tree,
                RemoteOp::Rename {
                    from: from.clone(),
                    to: tmp.clone(),
                },
                src,
                &touched,
            );
            self.queue_op(
                &mut tree,
                RemoteOp::Rename {
                    from: to.clone(),
                    to: from,
                },
                d,
                &touched,
            );
            self.queue_op(&mut tree, RemoteOp::Rename { from: tmp, to }, src, &touched);
            self.touch_dir(&mut tree, parent);
            self.touch_dir(&mut tree, newparent);
            return Ok(());
        }
        if let Some(d) = dest {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(FsError::Exists);
            }
            if d == src {
                return Ok(());
            }
            let dest_dir = tree.get(d).is_some_and(Node::is_dir);
            match (src_dir, dest_dir) {
                (false, true) => return Err(FsError::IsADirectory),
                (true, false) => return Err(FsError::NotADirectory),
                (true, true) if tree.children(d).is_some_and(|c| !c.is_empty()) => return Err(FsError::NotEmpty),
                _ => {}
            }
            tree.unlink_entry(newparent, newname);
        }
        // A file with bytes the server has not seen yet (open, never flushed: a temporary file
        // renamed into place before it is closed) goes up under its old name first, so the
        // server has something to rename.
        self.queue_upload(&mut tree, src);
        tree.unbind(parent, name);
        tree.unbind(newparent, newname);
        if let Some(c) = tree.children_mut(parent) {
            c.remove(name);
        }
        if let Some(c) = tree.children_mut(newparent) {
            c.insert(newname.to_owned(), src);
        }
        tree.rename_name(src, (parent, name), (newparent, newname.to_owned()));
        if let Some(n) = tree.get_mut(src) {
            n.ctime = SystemTime::now();
        }
        // Bytes written from now on go up under the new name.
        let touched = [parent, newparent, src];
        self.queue_op(&mut tree, RemoteOp::Rename { from, to }, src, &touched);
        self.touch_dir(&mut tree, parent);
        self.touch_dir(&mut tree, newparent);
        Ok(())
    }
}
