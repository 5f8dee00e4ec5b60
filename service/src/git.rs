//! Git smart HTTP's use cases: the ref advertisement and upload-pack of a session, read by
//! the caller. Pushing is refused. The protocol itself is `aether_gitbridge::serve`.

use bytes::Bytes;
use tokio::sync::mpsc;

use aether_core::SessionId;
use aether_gitbridge::serve::{self, Version};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// A repository path as git clients name it: `<session id>` or `<session id>.git`.
pub struct GitRepo<'a>(pub &'a str);

impl GitRepo<'_> {
    fn session(&self, p: &Principal) -> Result<SessionId> {
        let raw = self.0.strip_suffix(".git").unwrap_or(self.0);
        let id: SessionId = raw
            .parse()
            .map_err(|_| ServiceError::not_found(format!("repository '{}' not found", self.0)))?;
        p.require(&id, Access::Read)?;
        Ok(id)
    }
}

/// The response of an upload-pack request, written by a blocking producer; the job it runs as
/// is held until the receiver is dropped (the response ended or its client went away, which
/// stops the producer at its next piece).
pub struct PackStream {
    pub rx: mpsc::Receiver<Bytes>,
    _job: crate::admission::Job,
}

impl Service {
    /// The session `repo` names, if the caller may read it.
    pub fn git_session(&self, p: &Principal, repo: GitRepo<'_>) -> Result<SessionId> {
        repo.session(p)
    }

    /// The answer to `info/refs?service=git-upload-pack`.
    pub async fn git_advertise(&self, p: &Principal, repo: GitRepo<'_>, version: Version) -> Result<Vec<u8>> {
        let id = repo.session(p)?;
        self.observe("git_advertise", &id, None, async {
            self.recall(p, &id, "git fetch").await;
            let _job = self.admit("git advertisement")?;
            Ok(serve::advertise(self.engine(), &id, version).await?)
        })
        .await
    }

    /// The response bytes of an upload-pack request (`gzip`: the body is gzip-compressed).
    pub async fn git_upload_pack(
        &self,
        p: &Principal,
        repo: GitRepo<'_>,
        version: Version,
        body: bytes::Bytes,
        gzip: bool,
    ) -> Result<PackStream> {
        let id = repo.session(p)?;
        self.observe("git_fetch", &id, None, async {
            self.recall(p, &id, "git fetch").await;
            // The job first: a gzip'd body is decoded on a blocking thread, within the job cap.
            let job = self.admit_heavy(p, "git fetch")?;
            let request = serve::decode_body_blocking(body, gzip).await?;
            let rx = serve::upload_pack(self.engine(), &id, version, request).await?;
            Ok(PackStream { rx, _job: job })
        })
        .await
    }

    /// A push: refused (after the usual checks, so an unknown repository is still `not_found`).
    pub fn git_receive_pack(&self, p: &Principal, repo: GitRepo<'_>) -> Result<()> {
        repo.session(p)?;
        Err(ServiceError::forbidden("pushing is not supported"))
    }
}
