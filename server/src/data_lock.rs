//! One process per data directory: a server holds an exclusive lock on `<data dir>/aetherd.lock`
//! while it runs, and `aetherd gc` (which works on the directory with no server) takes the same
//! lock, so it refuses, saying why, while a server uses the directory. The kernel releases the
//! lock when the process ends, however it ends.

use std::fs::{File, TryLockError};
use std::path::Path;

/// The lock on `data_dir` (created if missing), held until the returned file is dropped.
pub fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", data_dir.display()))?;
    let path = data_dir.join("aetherd.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another aetherd is using the data directory {} (it holds {}); stop it first, or use \
             POST /v1/admin/gc on the running server",
            data_dir.display(),
            path.display()
        )),
        Err(TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}
