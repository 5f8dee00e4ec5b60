//! A session mounted with the real `aether mount` (background process, its log in a file),
//! unmounted on drop. `unmount` is the barrier the suite tests: `aether unmount` must return
//! only once the mount process sent everything it accepted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::env::Env;

static MOUNTS: AtomicUsize = AtomicUsize::new(0);

/// How `aether mount` is started.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// `--cache-dir` (the default lives in the test's home).
    pub cache_dir: Option<PathBuf>,
    /// `--at REV`: a read-only mount of a revision.
    pub at: Option<String>,
    /// `--ro`.
    pub read_only: bool,
}

pub struct Mount<'a> {
    env: &'a Env,
    dir: PathBuf,
    log: PathBuf,
    cache_dir: Option<PathBuf>,
    pid: Option<u32>,
    mounted: bool,
}

/// Whether `dir` is a mount point, from /proc/self/mountinfo.
pub fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(p) == dir)
}

impl<'a> Mount<'a> {
    /// Mount `session` on `dir` (created if missing).
    pub fn new(env: &'a Env, session: &str, dir: &Path, opts: &MountOptions) -> Result<Mount<'a>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let n = MOUNTS.fetch_add(1, Ordering::Relaxed);
        let log = env.home().join(format!("mount-{n}.log"));
        let dir_s = dir.to_str().ok_or("a UTF-8 mount point")?.to_owned();
        let log_s = log.to_str().ok_or("a UTF-8 log path")?.to_owned();
        let mut args: Vec<String> = vec![
            "--json".into(),
            "mount".into(),
            session.into(),
            dir_s,
            "--log-file".into(),
            log_s,
            "--log-level".into(),
            "info".into(),
        ];
        if let Some(c) = &opts.cache_dir {
            args.push("--cache-dir".into());
            args.push(c.to_str().ok_or("a UTF-8 cache dir")?.into());
        }
        if let Some(at) = &opts.at {
            args.push("--at".into());
            args.push(at.clone());
        }
        if opts.read_only {
            args.push("--ro".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = env.run(&refs, Duration::from_secs(120));
        if r.code != 0 {
            return Err(format!(
                "aether {}: {}\nmount log:\n{}",
                args.join(" "),
                r.transcript(),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        if !is_mounted(dir) {
            return Err(format!("aether mount returned but {} is not mounted", dir.display()));
        }
        let pid = serde_json::from_str::<serde_json::Value>(&r.stdout)
            .ok()
            .and_then(|v| v["pid"].as_u64())
            .map(|p| p as u32);
        Ok(Mount {
            env,
            dir: dir.to_owned(),
            log,
            cache_dir: opts.cache_dir.clone(),
            pid,
            mounted: true,
        })
    }

    pub fn root(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The mount process's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of the mount's log at ERROR level.
    pub fn log_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }

    fn unmount_args(&self, with_cache_dir: bool) -> Vec<String> {
        let mut a = vec!["unmount".to_owned(), self.dir.display().to_string()];
        if let Some(c) = self.cache_dir.as_ref().filter(|_| with_cache_dir) {
            a.push("--cache-dir".into());
            a.push(c.display().to_string());
        }
        a
    }

    /// `aether unmount DIR --cache-dir CACHE` (the mount's own cache directory when it was given
    /// one): returns once the mount process is gone. `Err` says why it was not a clean unmount
    /// (non-zero exit, still mounted, mount process alive, errors in its log).
    pub fn unmount(self) -> Result<Duration, String> {
        self.unmount_with(true)
    }

    /// `aether unmount DIR`, as `aether mount` tells its user to stop it, whatever cache
    /// directory the mount was started with.
    pub fn unmount_as_printed(self) -> Result<Duration, String> {
        self.unmount_with(false)
    }

    fn unmount_with(mut self, with_cache_dir: bool) -> Result<Duration, String> {
        let start = Instant::now();
        let args = self.unmount_args(with_cache_dir);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = self.env.run(&refs, Duration::from_secs(180));
        let took = start.elapsed();
        if r.code != 0 {
            return Err(format!(
                "aether unmount: {}\nmount log:\n{}",
                r.transcript(),
                self.log()
            ));
        }
        self.mounted = false;
        if is_mounted(&self.dir) {
            return Err(format!("{} is still mounted after aether unmount", self.dir.display()));
        }
        if self.process_alive() {
            return Err(format!(
                "aether unmount returned after {took:?} but the mount process {:?} still runs",
                self.pid
            ));
        }
        let errors = self.log_errors();
        if !errors.is_empty() {
            return Err(format!("the mount logged errors:\n{}", errors.join("\n")));
        }
        Ok(took)
    }

    /// Whether the mount process is alive (not gone, not a zombie).
    pub fn process_alive(&self) -> bool {
        self.pid
            .is_some_and(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")))
    }

    /// Tear down without a barrier: detach the mount point and kill the process (after a hang).
    pub fn abort(mut self) {
        self.kill();
        self.mounted = false;
    }

    /// Detach the mount point and kill the mount process, so calls stuck in it return.
    pub fn kill(&self) {
        for (tool, args) in [("fusermount3", &["-uz"][..]), ("umount", &["-l"][..])] {
            let ok = Command::new(tool)
                .args(args)
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
        }
        if let Some(pid) = self.pid {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Mount<'_> {
    /// After a failed test: unmount; when that fails (something still uses the mount), detach
    /// it and kill the mount process, so nothing outlives the test.
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let args = self.unmount_args(true);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        if self.env.run(&refs, Duration::from_secs(60)).code == 0 && !is_mounted(&self.dir) {
            self.mounted = false;
            return;
        }
        self.kill();
        self.mounted = false;
    }
}
