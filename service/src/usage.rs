//! What sessions hold (their files and bytes, what of them is their own) and what the server
//! holds: bytes on disk per store, bytes in its memory caches, sessions loaded (for operators:
//! the admin token).

use aether_core::objects::CacheUsage;
use aether_core::{DiskUsage, ServerUsage, SessionUsage};

use crate::Service;
use crate::error::Result;
use crate::principal::{Access, Principal};

impl Service {
    /// What a session holds, and what of it is its own (what its quota counts).
    pub async fn session_usage(&self, p: &Principal, id: &str) -> Result<SessionUsage> {
        let id = self.session(p, id, Access::Read)?;
        Ok(self.engine_for(p).session_usage(&id).await?)
    }

    /// Every session's figures summed against the stores' bytes on disk (admin token; a heavy
    /// operation: it reads every session).
    pub async fn server_usage(&self, p: &Principal) -> Result<ServerUsage> {
        p.require_admin()?;
        let _job = self.admit_heavy(p, "server usage")?;
        Ok(self.engine_for(p).server_usage().await?)
    }

    /// Bytes each store holds on disk (walks the stores' directories).
    pub async fn disk_usage(&self, p: &Principal) -> Result<DiskUsage> {
        p.require_admin()?;
        Ok(self.engine().disk_usage().await?)
    }

    /// Loose objects and packs in the object database now (lists it: call it rarely).
    pub async fn object_files(&self, p: &Principal) -> Result<aether_core::ObjectFiles> {
        p.require_admin()?;
        Ok(self.engine().object_files().await?)
    }

    /// Bytes the engine's memory caches hold now, each with its cap.
    pub fn cache_usage(&self, p: &Principal) -> Result<(CacheUsage, aether_core::CacheConfig)> {
        p.require_admin()?;
        Ok((self.engine().cache_usage(), self.engine().config().caches))
    }

    /// Sessions loaded in memory and the overlay entries they hold together.
    pub fn sessions_in_memory(&self, p: &Principal) -> Result<(usize, usize)> {
        p.require_admin()?;
        Ok(self.engine().sessions_in_memory())
    }
}
