//! Serving a mount in this process: connect the pieces (backend, cache, writeback, file
//! system), mount through FUSE, follow the session's changes, and at the end send what the
//! mount accepted and leave the exit status `aether unmount` waits for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aether_proto::v1 as pb;

use crate::access::{self, ReadOnly};
use crate::backend::Backend;
use crate::content_cache::{ContentCache, Verification};
use crate::cpu_latency::{self, CpuLatency};
use crate::error::{MountError, Result};
use crate::events::MountId;
use crate::fs::{AetherFs, MountConfig};
use crate::fuse::Fuse;
use crate::grpc_backend::GrpcBackend;
use crate::handoff::attach_session;
use crate::lost_found::Journal;
use crate::options::{MountOptions, absolute, cache_dir, records_root};
use crate::records::{ExitStatus, Records};
use crate::refused::Refusal;
use crate::tree::time_from_ns;
use crate::unmount::{shutdown_signal, unmount_retrying};
use crate::watch::{open_watch, watch_session};
use crate::writeback::Writeback;
use aether_proto::remote::Remote;

/// What [`serve`] tells its caller once the mount answers requests.
pub struct Ready<'a> {
    /// The session's id.
    pub session: &'a str,
    /// The mount point, absolute.
    pub dir: &'a Path,
    /// Why the mount refuses every change, if it does.
    pub read_only: Option<&'a ReadOnly>,
}

/// Benchmark only: `1` makes the mount take file content as the server sends it, without
/// verifying it against its content id and without hashes in (or checks of) the disk cache, so
/// the cost of verification can be measured (`bench mount-seq-read`). Never set it otherwise.
pub const UNVERIFIED_ENV: &str = "AETHER_BENCH_UNVERIFIED_READS";

fn verification_from_env() -> Verification {
    match std::env::var(UNVERIFIED_ENV) {
        Ok(v) if v == "1" => Verification::OffForBenchmark,
        _ => Verification::On,
    }
}

/// Kernel and listing TTL while the watch stream is connected (invalidation is exact then).
const WATCHED_TTL: Duration = Duration::from_secs(3600);

/// Mount `opts.session` on `opts.dir` and serve it until it is unmounted (by `aether unmount`,
/// `fusermount3 -u`, or a signal to this process). `ready` is called once the mount answers.
/// Fails at the end if the server does not hold every change the mount accepted.
pub async fn serve(remote: &Remote, opts: &MountOptions, ready: impl FnOnce(&Ready<'_>)) -> Result<()> {
    // Every request names this mount, so its changes come back on the watch stream as its own.
    let mount_id = MountId::generate();
    let remote = &remote
        .as_mount(mount_id.as_str())
        .map_err(|e| MountError::Spawn(e.to_string()))?;
    let dir = absolute(&opts.dir)?;
    let dir = dir.as_path();
    let session = remote
        .sessions()
        .get_session(pb::GetSessionRequest {
            id: opts.session.clone(),
        })
        .await
        .map_err(MountError::Server)?
        .into_inner();
    // A token that may only read, or an archived session, mounts read-only: changes fail at
    // once with EROFS rather than being accepted here and refused by the server later.
    let read_only_because = access::decide(remote, &session, opts.read_only, opts.at.as_deref()).await?;
    if let Some(why @ (ReadOnly::Token { .. } | ReadOnly::Archived)) = &read_only_because {
        tracing::warn!("{why}");
    }
    let read_only = read_only_because.is_some();
    let cache_root = cache_dir(&opts.cache_dir)?;
    let verification = verification_from_env();
    if verification == Verification::OffForBenchmark {
        tracing::warn!("{UNVERIFIED_ENV} is set: file content is NOT verified (benchmark only)");
    }
    let cache = Arc::new(
        ContentCache::with_verification(
            opts.cache_mem,
            Some((cache_root.clone(), opts.cache_size)),
            verification,
        )
        .map_err(|source| MountError::Io {
            what: format!("cannot use the cache directory {}", cache_root.display()),
            source,
        })?,
    );
    let grpc = Arc::new(GrpcBackend::new(
        tokio::runtime::Handle::current(),
        remote.clone(),
        session.id.clone(),
        opts.at.clone(),
    ));
    let backend: Arc<dyn Backend> = grpc.clone();
    let writeback = Arc::new(Writeback::start(
        backend.clone(),
        Duration::from_secs(opts.retry_secs),
        cache_root.join("lost+found"),
    ));
    writeback.journal_to(Journal::new(&cache_root.join("lost+found"), dir, &session.id));
    // Who runs the mount; files show as theirs (root's when unknown, which is not treated as
    // root below).
    let owner = owner_of("/proc/self");
    let (uid, gid) = owner.unwrap_or((0, 0));
    let config = MountConfig {
        read_only,
        ttl: Duration::from_secs(1),
        watched_ttl: WATCHED_TTL,
        uid,
        gid,
        staging_dir: cache_root.join("staging"),
        warm_at: opts.warm_kernel_cache.then(|| dir.to_path_buf()),
        mount_id,
    };
    let latency = if opts.cpu_latency {
        CpuLatency::start(cpu_latency::DEVICE.into(), cpu_latency::IDLE)
    } else {
        CpuLatency::off()
    };
    // The root's own mode and time, as a `chmod` of the mount's root (here or elsewhere) left
    // them; a server that cannot say leaves the defaults.
    let root = remote
        .files()
        .stat(pb::StatRequest {
            session: session.id.clone(),
            path: String::new(),
            at: opts.at.clone(),
            content_id: None,
        })
        .await
        .map(tonic::Response::into_inner)
        .ok()
        .filter(|s| s.kind == "dir");
    let fs = AetherFs::new(backend, cache.clone(), writeback.clone(), config)
        .map_err(|source| MountError::Io {
            what: format!("cannot prepare {}", cache_root.display()),
            source,
        })?
        .with_cpu_latency(latency);
    let fs = match root {
        Some(s) => fs.with_root(s.mode, (s.mtime_ns > 0).then(|| time_from_ns(s.mtime_ns))),
        None => fs,
    };
    let watcher = fs.clone();
    let handle = fs.clone();
    // The handoff channel: attached before the mount answers, so the first change it accepts is
    // already announced (see `handoff`), and other mounts report their changes to it before it
    // caches anything. A read-only live mount attaches too (to hear of other mounts' changes);
    // a view of a checkpoint never changes and needs none.
    let attach = if opts.at.is_some() {
        None
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(attach_session(remote.clone(), session.id.clone(), fs.clone(), Some(tx)));
        if tokio::time::timeout(Duration::from_secs(5), rx).await.is_err() {
            tracing::warn!("not attached for handoff yet: API reads may miss the first changes until it is");
        }
        Some(task)
    };
    // Changes made elsewhere (API, other mounts) invalidate what this mount cached. The stream
    // starts "from now" (nothing is cached yet) and is opened before the mount answers anything,
    // so no change can fall between a listing and the start of the stream. A view of a
    // checkpoint never changes: it needs no stream and trusts its entries for long.
    let first_watch = match &opts.at {
        Some(_) => {
            fs.set_watching(true);
            None
        }
        None => Some(open_watch(remote, &session.id, None).await),
    };
    let invalidator = fs.invalidator();
    let mut options = vec![
        fuser::MountOption::FSName(format!("aether:{}", session.id)),
        fuser::MountOption::Subtype("aether".into()),
    ];
    // The kernel checks permissions from the attributes it caches (`default_permissions`), so
    // once a directory changes it asks for the directory's attributes again at the next path
    // walk through it: a GETATTR after every create, unlink or rename, two per file in a
    // checkout. Without `--allow-other` only the user who mounts can use the mount, and for
    // root every such check passes anyway, except running a file without any execute bit,
    // which the kernel still checks without the option (and `access` answers as it would). So
    // root's own mounts go without it; any other user's keep it (as does a mount whose owner
    // cannot be read), and so does every mount other users may use: the kernel then checks
    // each access by mode, owner and group, and (in `setattr_prepare`) who may chown, chgrp,
    // chmod, set set-group-ID or set times, before the mount sees the request.
    let root_mounts = owner.is_some_and(|(uid, _)| uid == 0);
    if opts.allow_other && !root_mounts && !fuse_conf_allows_other(Path::new(FUSE_CONF)) {
        return Err(MountError::AllowOtherNotPermitted);
    }
    if opts.allow_other || !root_mounts {
        options.push(fuser::MountOption::DefaultPermissions);
    }
    if read_only {
        options.push(fuser::MountOption::RO);
    }
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    if opts.allow_other {
        // `allow_other` for the kernel, and fuser serves every user's requests.
        fuse_config.acl = fuser::SessionACL::All;
    }
    // More threads than CPUs mostly adds thread switches: each kernel request is small work.
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(8)));
    fuse_config.n_threads = Some(threads.max(1));
    fuse_config.clone_fd = true;
    let mountpoint = dir.to_path_buf();
    let bg = tokio::task::spawn_blocking(move || fuser::spawn_mount(Fuse::new(fs), &mountpoint, &fuse_config))
        .await
        .map_err(|e| MountError::Task(e.to_string()))?
        .map_err(|source| {
            let dir = dir.to_path_buf();
            if opts.allow_other {
                MountError::AllowOther { dir, source }
            } else {
                MountError::Kernel { dir, source }
            }
        })?;
    invalidator.connect(bg.notifier());
    let records = Records::new(&records_root(&opts.cache_dir)?, dir);
    if let Err(e) = records.serving() {
        tracing::warn!(error = %e, "cannot record the mount process: 'aether unmount' will not find it");
    }

    let watch =
        first_watch.map(|first| tokio::spawn(watch_session(remote.clone(), session.id.clone(), watcher, first)));

    ready(&Ready {
        session: &session.id,
        dir,
        read_only: read_only_because.as_ref(),
    });

    let joined = tokio::task::spawn_blocking(move || bg.join());
    tokio::pin!(joined);
    loop {
        tokio::select! {
            r = &mut joined => { let _ = r; break; }
            () = shutdown_signal() => {
                handle.stop_warming();
                let target = dir.to_path_buf();
                let tried = tokio::task::spawn_blocking(move || unmount_retrying(&target)).await;
                match tried.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
                    Ok(true) => {
                        let _ = (&mut joined).await;
                        break;
                    }
                    // Still mounted: stopping now would leave every user of the directory
                    // with "transport endpoint is not connected". Keep serving; the next
                    // signal tries again.
                    Ok(false) => tracing::error!(
                        dir = %dir.display(),
                        "cannot unmount: the mount is busy; still serving (without the kernel cache \
                         refresh). Close what uses it, then signal again or run 'aether unmount'"
                    ),
                    Err(e) => tracing::error!(error = %e, "cannot run fusermount3 to unmount; still serving"),
                }
            }
        }
    }
    if let Some(a) = attach {
        a.abort();
    }
    if let Some(w) = watch {
        w.abort();
    }
    // The file system's destroy() has sent what it could; this only makes sure of it.
    let _ = handle.finish();
    tracing::info!(calls = %grpc.call_counts(), cache = ?cache.stats(), "what the mount asked of the server");
    let lost_found = cache_root.join("lost+found");
    let not_on_server = newest_per_change(writeback.not_on_server());
    for r in &not_on_server {
        tracing::error!(change = %r.change, path = %r.path, error = %r.error, kept = ?r.kept,
            "the server does not hold a change made through the mount");
    }
    let status = ExitStatus {
        pid: std::process::id(),
        not_on_server,
        lost_found,
    };
    if let Err(e) = records.exiting(&status) {
        tracing::error!(error = %e, "cannot leave the exit status for 'aether unmount'");
    }
    match not_on_server_error(dir, &status) {
        Some(e) => {
            tracing::error!("{e}");
            Err(e)
        }
        None => Ok(()),
    }
}

/// The newest refusal of each change to each path (a file refused at its close and again at
/// its `fsync` is one file the server does not hold: the newest copy of its bytes is named).
fn newest_per_change(all: Vec<Refusal>) -> Vec<Refusal> {
    let mut newest: Vec<Refusal> = Vec::with_capacity(all.len());
    let mut at: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for r in all {
        match at.get(&(r.change.clone(), r.path.clone())) {
            Some(&i) => newest[i] = r,
            None => {
                at.insert((r.change.clone(), r.path.clone()), newest.len());
                newest.push(r);
            }
        }
    }
    newest
}

/// The error a mount's end reports when the server does not hold everything it accepted.
pub(crate) fn not_on_server_error(dir: &Path, status: &ExitStatus) -> Option<MountError> {
    (!status.not_on_server.is_empty()).then(|| MountError::NotOnServer {
        dir: dir.to_path_buf(),
        list: status.not_on_server.clone(),
        lost_found: status.lost_found.clone(),
    })
}

/// Where fusermount3 reads whether users other than root may mount with `allow_other`.
const FUSE_CONF: &str = "/etc/fuse.conf";

/// Whether the fuse configuration at `path` has an uncommented `user_allow_other` line.
fn fuse_conf_allows_other(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|conf| {
        conf.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .any(|l| l == "user_allow_other")
    })
}

/// The uid and gid owning `path` (for `/proc/self`: this process's), if it can be read.
fn owner_of(path: &str) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

#[cfg(test)]
mod tests {
    use super::fuse_conf_allows_other;

    #[test]
    fn only_an_uncommented_user_allow_other_lets_users_allow_others() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fuse.conf");
        assert!(!fuse_conf_allows_other(&conf), "no file");
        for (text, allows) in [
            ("# user_allow_other\nmount_max = 1000\n", false),
            ("mount_max = 1000\n  user_allow_other  \n", true),
            ("user_allow_other # for aether\n", true),
            ("user_allow_others\n", false),
        ] {
            std::fs::write(&conf, text).unwrap();
            assert_eq!(fuse_conf_allows_other(&conf), allows, "{text:?}");
        }
    }
}
