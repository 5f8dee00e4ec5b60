//! What the server holds: bytes on disk per store (for operators: the admin token).

use aether_core::DiskUsage;

use crate::Service;
use crate::error::Result;
use crate::principal::Principal;

impl Service {
    /// Bytes each store holds on disk (walks the stores' directories).
    pub async fn disk_usage(&self, p: &Principal) -> Result<DiskUsage> {
        p.require_admin()?;
        Ok(self.engine().disk_usage().await?)
    }
}
