//! The object store as every writer sees it: each write runs under the collection barrier's
//! write gate and records what it wrote (see `barrier`). Reads pass through.

use std::path::Path;
use std::sync::Arc;

use gix::ObjectId;

use super::GcBarrier;
use crate::config::Identity;
use crate::error::Result;
use crate::object_store::{CommitInfo, ObjectStore, Tree, TreeEdit};

pub(crate) struct Guarded {
    pub inner: Arc<dyn ObjectStore>,
    pub barrier: Arc<GcBarrier>,
}

impl ObjectStore for Guarded {
    fn git_dir(&self) -> &Path {
        self.inner.git_dir()
    }
    fn repo(&self) -> gix::Repository {
        self.inner.repo()
    }
    fn write_blob(&self, data: &[u8]) -> Result<ObjectId> {
        let _gate = self.barrier.write_gate();
        let oid = self.inner.write_blob(data)?;
        self.barrier.wrote_object(oid);
        Ok(oid)
    }
    fn contains(&self, oid: &ObjectId) -> bool {
        self.inner.contains(oid)
    }
    fn header(&self, oid: &ObjectId) -> Result<Option<(gix::objs::Kind, u64)>> {
        self.inner.header(oid)
    }
    fn read_blob(&self, oid: &ObjectId) -> Result<Vec<u8>> {
        self.inner.read_blob(oid)
    }
    fn read_tree(&self, oid: &ObjectId) -> Result<Tree> {
        self.inner.read_tree(oid)
    }
    fn edit_tree(&self, base: ObjectId, edits: &[TreeEdit]) -> Result<ObjectId> {
        // The edited tree reaches every subtree written or found on the way, and the blobs
        // the edits name: recording the root keeps them all.
        let _gate = self.barrier.write_gate();
        let oid = self.inner.edit_tree(base, edits)?;
        self.barrier.wrote_object(oid);
        Ok(oid)
    }
    fn empty_tree(&self) -> ObjectId {
        self.inner.empty_tree()
    }
    fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        author: Option<&Identity>,
        time_secs: i64,
    ) -> Result<ObjectId> {
        let _gate = self.barrier.write_gate();
        let oid = self.inner.write_commit(tree, parents, message, author, time_secs)?;
        self.barrier.wrote_object(oid);
        Ok(oid)
    }
    fn read_commit(&self, oid: &ObjectId) -> Result<CommitInfo> {
        self.inner.read_commit(oid)
    }
    fn commit_tree_and_spelling(&self, oid: &ObjectId) -> Result<(ObjectId, bool)> {
        self.inner.commit_tree_and_spelling(oid)
    }
    fn set_ref(&self, name: &str, target: ObjectId, log_message: &str) -> Result<()> {
        let _gate = self.barrier.write_gate();
        self.inner.set_ref(name, target, log_message)?;
        self.barrier.wrote_object(target);
        Ok(())
    }
    fn find_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        self.inner.find_ref(name)
    }
    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        self.inner.list_refs(prefix)
    }
    fn delete_refs(&self, prefix: &str) -> Result<()> {
        self.inner.delete_refs(prefix)
    }
    fn delete_ref(&self, name: &str) -> Result<()> {
        self.inner.delete_ref(name)
    }
    fn packs_removed(&self) {
        self.inner.packs_removed()
    }
}
