//! What the mount benchmarks share: an aetherd child on a given data directory, sessions made
//! over HTTP, and `aether mount` run as a user runs it (the release `aether` binary next to this
//! one, in the background, with its own cache directory), unmounted on drop so a failed sample
//! cannot leave a mount behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ctx::Ctx;
use crate::fixture::command::run;
use crate::server::{Server, create_session};

/// The `aether` binary built in the same profile as this one (`target/release/aether`).
pub fn aether_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let bin = exe.with_file_name("aether");
    if !bin.is_file() {
        bail!(
            "{} is missing: build it first (cargo build --release -p aether-cli)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Whether this machine can mount FUSE file systems at all.
pub fn fuse_available() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: the mount benchmarks need FUSE (apt-get install fuse3)");
    }
    Ok(())
}

/// A server child and the client binary that mounts its sessions.
pub struct MountServer {
    pub server: Server,
    pub http: reqwest::Client,
    aether: PathBuf,
}

impl MountServer {
    /// A server on `data_dir` (created if missing).
    pub fn start(data_dir: &Path) -> Result<MountServer> {
        fuse_available()?;
        let aether = aether_binary()?;
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let server = Server::aetherd(data_dir)?;
        Ok(MountServer {
            server,
            http: crate::server::client()?,
            aether,
        })
    }

    pub fn new_session(&self, ctx: &Ctx) -> Result<String> {
        ctx.rt.block_on(create_session(&self.http, &self.server))
    }

    /// `aether --server .. --token .. ARGS`.
    pub fn aether(&self) -> Command {
        let mut c = Command::new(&self.aether);
        c.arg("--server")
            .arg(&self.server.base)
            .arg("--token")
            .arg(&self.server.token);
        c
    }

    /// Mount `session` on a new directory `dir` with the content cache in `cache`; returns once
    /// the mount is ready.
    pub fn mount(&self, session: &str, dir: &Path, cache: &Path) -> Result<Mount> {
        self.mount_with_env(session, dir, cache, &[])
    }

    /// [`MountServer::mount`] with `env` set for the mount process.
    pub fn mount_with_env(&self, session: &str, dir: &Path, cache: &Path, env: &[(&str, &str)]) -> Result<Mount> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
        let log = cache.join("mount.log");
        run(self
            .aether()
            .envs(env.iter().copied())
            .arg("mount")
            .arg(session)
            .arg(dir)
            .arg("--cache-dir")
            .arg(cache)
            .arg("--cache-mem")
            .arg("1G")
            .arg("--log-file")
            .arg(&log))?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            cache: cache.to_path_buf(),
            aether: self.aether(),
            mounted: true,
        })
    }
}

/// A mounted session; unmounted (sending what is queued) on drop or by [`Mount::unmount`].
pub struct Mount {
    pub dir: PathBuf,
    pub cache: PathBuf,
    aether: Command,
    mounted: bool,
}

impl Mount {
    /// Wait until every change made through the mount is acknowledged by the server: `fsync` of
    /// a new file waits for everything queued before it (the mount sends changes in order).
    pub fn barrier(&self) -> Result<Duration> {
        let t = Instant::now();
        let path = self.dir.join(".aether-bench-barrier");
        let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        f.sync_all().context("fsync through the mount")?;
        drop(f);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        Ok(t.elapsed())
    }

    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        let dir = self.dir.clone();
        let cache = self.cache.clone();
        run(self.aether.arg("unmount").arg(&dir).arg("--cache-dir").arg(&cache)).map(drop)
    }

    /// The mount's log (its warnings say why something was slow or refused).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.cache.join("mount.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.dir).status();
        }
    }
}

/// `echo 3 > /proc/sys/vm/drop_caches` after a sync: the next read of anything comes from the
/// disk. False when not allowed (not root, or in a container that forbids it).
pub fn drop_page_cache() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Remove a tree, through whatever file system it is on; timed.
pub fn rm_rf(dir: &Path) -> Result<Duration> {
    let t = Instant::now();
    run(Command::new("rm").arg("-rf").arg(dir))?;
    Ok(t.elapsed())
}
