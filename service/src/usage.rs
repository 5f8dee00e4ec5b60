//! What the server holds: bytes on disk per store, bytes in its memory caches, sessions loaded
//! (for operators: the admin token).

use aether_core::DiskUsage;
use aether_core::objects::CacheUsage;

use crate::Service;
use crate::error::Result;
use crate::principal::Principal;

impl Service {
    /// Bytes each store holds on disk (walks the stores' directories).
    pub async fn disk_usage(&self, p: &Principal) -> Result<DiskUsage> {
        p.require_admin()?;
        Ok(self.engine().disk_usage().await?)
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
