//! `aether mount`, `aether unmount` and `aether cache`: mount a session through FUSE, in the
//! background by default (the command returns once the mount is ready), or in the foreground.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aether_proto::v1 as pb;

use crate::Out;
use crate::args::{CacheCmd, MountArgs, UnmountArgs};
use crate::client::Client;
use crate::error::{CliError, Kind, Result};
use crate::mount::backend::Backend;
use crate::mount::content_cache::{self, ContentCache, Verification};
use crate::mount::cpu_latency::{self, CpuLatency};
use crate::mount::events::RemoteEvent;
use crate::mount::fs::{AetherFs, MountConfig};
use crate::mount::grpc_backend::GrpcBackend;
use crate::mount::records::{ExitStatus, Process, Records};
use crate::mount::refused::Refusal;
use crate::mount::tree::time_from_ns;
use crate::mount::writeback::Writeback;
use crate::output;

/// Set in the environment of the background child: it reports readiness on its stdout.
const CHILD_ENV: &str = "AETHER_MOUNT_CHILD";
const READY: &str = "ready";

fn cache_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d.clone()),
        None => crate::commands::doctor::cache_dir().ok_or_else(|| {
            CliError::usage(
                "no cache directory: neither XDG_CACHE_HOME nor HOME is set",
                "pass --cache-dir DIR",
            )
        }),
    }
}

/// Where mount processes record themselves for `aether unmount` (see `records`): the default
/// cache directory, whatever `--cache-dir` a mount uses, so that the `aether unmount DIR` a
/// mount prints finds it; `fallback` (the mount's own cache directory) only when neither
/// XDG_CACHE_HOME nor HOME is set.
fn records_root(fallback: &Option<PathBuf>) -> Result<PathBuf> {
    match (crate::commands::doctor::cache_dir(), fallback) {
        (Some(d), _) => Ok(d),
        (None, fallback) => cache_dir(fallback),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(dir).map_err(|e| {
        CliError::new(
            Kind::NotFound,
            format!("cannot use {} as a mount point: {e}", dir.display()),
            "create the directory first (mkdir -p DIR)",
        )
    })?;
    if !abs.is_dir() {
        return Err(CliError::usage(
            format!("{} is not a directory", abs.display()),
            "mount on an empty directory",
        ));
    }
    Ok(abs)
}

pub async fn mount(client: &Client, args: MountArgs, out: Out) -> Result<()> {
    let dir = absolute(&args.dir)?;
    if !args.foreground && std::env::var_os(CHILD_ENV).is_none() {
        return spawn_background(&args, &dir, out);
    }
    let child = std::env::var_os(CHILD_ENV).is_some();
    let result = mount_here(client, &args, &dir, child, out).await;
    if child && let Err(e) = &result {
        // Before readiness the parent reads this line and reports it.
        println!("error\t{}\t{}\t{}", e.kind.name(), e.message.replace('\t', " "), e.hint);
    }
    result
}

/// Start `aether mount -f` detached and wait until it says the mount is ready.
fn spawn_background(args: &MountArgs, dir: &Path, out: Out) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| CliError::io("cannot find the aether binary", e))?;
    let log = match &args.log_file {
        Some(p) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| CliError::io(format!("cannot open the log file {}", p.display()), e))?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal does not take the mount down.
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::io("cannot start the mount process", e))?;
    let stdout = child.stdout.take().ok_or_else(|| {
        CliError::new(
            Kind::Other,
            "no pipe to the mount process",
            "retry with -f to see what happens",
        )
    })?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match (read, line.trim_end()) {
        (Ok(_), l) if l == READY => {
            if out.json {
                output::print_json(&serde_json::json!({
                    "mounted": dir.display().to_string(),
                    "session": args.session,
                    "pid": child.id(),
                }));
            } else {
                println!("mounted {} at {} (pid {})", args.session, dir.display(), child.id());
            }
            Ok(())
        }
        (_, l) => {
            let _ = child.wait();
            let mut parts = l.splitn(4, '\t');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("error"), Some(kind), Some(message), Some(hint)) => Err(CliError::new(
                    Kind::from_name(kind),
                    message.to_owned(),
                    hint.to_owned(),
                )),
                _ => Err(CliError::new(
                    Kind::Other,
                    "the mount process stopped before the mount was ready",
                    "run with -f (and --log-level debug) to see why",
                )),
            }
        }
    }
}

async fn mount_here(client: &Client, args: &MountArgs, dir: &Path, child: bool, out: Out) -> Result<()> {
    let session = client
        .sessions()
        .get_session(pb::GetSessionRequest {
            id: args.session.clone(),
        })
        .await
        .map_err(|s| client.err(s))?
        .into_inner();
    let read_only = args.ro || args.at.is_some();
    let cache_root = cache_dir(&args.cache_dir)?;
    let verification = verification_from_env();
    if verification == Verification::OffForBenchmark {
        tracing::warn!("{UNVERIFIED_ENV} is set: file content is NOT verified (benchmark only)");
    }
    let cache = Arc::new(
        ContentCache::with_verification(
            args.cache_mem,
            Some((cache_root.clone(), args.cache_size)),
            verification,
        )
        .map_err(|e| CliError::io(format!("cannot use the cache directory {}", cache_root.display()), e))?,
    );
    let backend: Arc<dyn Backend> = Arc::new(GrpcBackend::new(
        tokio::runtime::Handle::current(),
        client.clone(),
        session.id.clone(),
        args.at.clone(),
    ));
    let writeback = Arc::new(Writeback::start(
        backend.clone(),
        Duration::from_secs(args.retry_secs),
        cache_root.join("lost+found"),
    ));
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
        warm_at: args.warm_kernel_cache.then(|| dir.to_path_buf()),
    };
    let latency = if args.cpu_latency {
        CpuLatency::start(cpu_latency::DEVICE.into(), cpu_latency::IDLE)
    } else {
        CpuLatency::off()
    };
    // The root's own mode and time, as a `chmod` of the mount's root (here or elsewhere) left
    // them; a server that cannot say leaves the defaults.
    let root = client
        .files()
        .stat(pb::StatRequest {
            session: session.id.clone(),
            path: String::new(),
            at: args.at.clone(),
        })
        .await
        .map(tonic::Response::into_inner)
        .ok()
        .filter(|s| s.kind == "dir");
    let fs = AetherFs::new(backend, cache, writeback.clone(), config)
        .map_err(|e| CliError::io(format!("cannot prepare {}", cache_root.display()), e))?
        .with_cpu_latency(latency);
    let fs = match root {
        Some(s) => fs.with_root(s.mode, (s.mtime_ns > 0).then(|| time_from_ns(s.mtime_ns))),
        None => fs,
    };
    let watcher = fs.clone();
    let handle = fs.clone();
    // Changes made elsewhere (API, other mounts) invalidate what this mount cached. The stream
    // starts "from now" (nothing is cached yet) and is opened before the mount answers anything,
    // so no change can fall between a listing and the start of the stream. A view of a
    // checkpoint never changes: it needs no stream and trusts its entries for long.
    let first_watch = match &args.at {
        Some(_) => {
            fs.set_watching(true);
            None
        }
        None => Some(open_watch(client, &session.id, None).await),
    };
    let invalidator = fs.invalidator();
    let mut options = vec![
        fuser::MountOption::FSName(format!("aether:{}", session.id)),
        fuser::MountOption::Subtype("aether".into()),
    ];
    // The kernel checks permissions from the attributes it caches (`default_permissions`), so
    // once a directory changes it asks for the directory's attributes again at the next path
    // walk through it: a GETATTR after every create, unlink or rename, two per file in a
    // checkout. Only the user who mounts can use the mount, and for root every such check
    // passes anyway, except running a file without any execute bit, which the kernel still
    // checks without the option (and `access` answers as it would). So root's mounts go
    // without it; any other user's keep it (as does a mount whose owner cannot be read).
    if owner.is_none_or(|(uid, _)| uid != 0) {
        options.push(fuser::MountOption::DefaultPermissions);
    }
    if read_only {
        options.push(fuser::MountOption::RO);
    }
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    // More threads than CPUs mostly adds thread switches: each kernel request is small work.
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(8)));
    fuse_config.n_threads = Some(threads.max(1));
    fuse_config.clone_fd = true;
    let mountpoint = dir.to_path_buf();
    let bg = tokio::task::spawn_blocking(move || fuser::spawn_mount(fs, &mountpoint, &fuse_config))
        .await
        .map_err(|e| CliError::new(Kind::Other, format!("mount task failed: {e}"), "retry with -f"))?
        .map_err(|e| {
            CliError::new(
                Kind::Other,
                format!("cannot mount on {}: {e}", dir.display()),
                "check that /dev/fuse exists and fusermount3 is installed (aether doctor)",
            )
        })?;
    invalidator.connect(bg.notifier());
    let records = Records::new(&records_root(&args.cache_dir)?, dir);
    if let Err(e) = records.serving() {
        tracing::warn!(error = %e, "cannot record the mount process: 'aether unmount' will not find it");
    }

    let watch =
        first_watch.map(|first| tokio::spawn(watch_session(client.clone(), session.id.clone(), watcher, first)));

    if child {
        println!("{READY}");
        let _ = std::io::stdout().flush();
    } else if out.json {
        output::print_json(&serde_json::json!({"mounted": dir.display().to_string(), "session": session.id}));
    } else {
        println!(
            "mounted {} at {} (Ctrl-C or 'aether unmount {}' to stop)",
            session.id,
            dir.display(),
            dir.display()
        );
    }

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
    if let Some(w) = watch {
        w.abort();
    }
    // The file system's destroy() has sent what it could; this only makes sure of it.
    let _ = handle.finish();
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
            tracing::error!("{}", e.message);
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
fn not_on_server_error(dir: &Path, status: &ExitStatus) -> Option<CliError> {
    const SHOWN: usize = 50;
    let list: &[Refusal] = &status.not_on_server;
    if list.is_empty() {
        return None;
    }
    let mut message = format!(
        "the server does not hold {} change{} made through {}:",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        dir.display()
    );
    for r in list.iter().take(SHOWN) {
        message.push_str(&format!("\n  {r}"));
    }
    if list.len() > SHOWN {
        message.push_str(&format!("\n  and {} more (see the mount's log)", list.len() - SHOWN));
    }
    Some(CliError::new(
        Kind::Other,
        message,
        format!(
            "the bytes of those uploads are kept in {}; write them again once the cause is fixed",
            status.lost_found.display()
        ),
    ))
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

type Watch = std::result::Result<(tonic::Streaming<pb::Event>, Option<i64>), tonic::Status>;

/// Open the session's watch stream after `cursor`, or from now; returns the stream and the
/// cursor it starts after when the server says.
async fn open_watch(client: &Client, session: &str, cursor: Option<i64>) -> Watch {
    let req = pb::WatchEventsRequest {
        id: session.to_owned(),
        after_seq: cursor.unwrap_or(0),
        from_now: cursor.is_none(),
    };
    let resp = client.sessions().watch_events(req).await?;
    let start = resp
        .metadata()
        .get("aether-cursor")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    Ok((resp.into_inner(), cursor.or(start)))
}

/// Feed the watch stream's events to the mount, reconnecting from the last event seen. While
/// disconnected the mount falls back to short TTLs; the replay after reconnecting invalidates
/// whatever changed meanwhile.
async fn watch_session(client: Client, session: String, fs: AetherFs, first: Watch) {
    let mut next = Some(first);
    let mut cursor: Option<i64> = None;
    loop {
        let opened = match next.take() {
            Some(w) => w,
            None => open_watch(&client, &session, cursor).await,
        };
        match opened {
            Ok((mut stream, start)) => {
                cursor = cursor.or(start);
                fs.set_watching(true);
                loop {
                    match stream.message().await {
                        Ok(Some(event)) => {
                            cursor = Some(event.seq);
                            fs.apply_event(&RemoteEvent::parse(
                                &event.kind,
                                event.path.as_deref(),
                                &event.detail_json,
                            ));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "watch stream failed; reconnecting");
                            break;
                        }
                    }
                }
                fs.set_watching(false);
            }
            Err(e) => tracing::debug!(error = %e, "cannot open the watch stream; retrying"),
        }
        // Without a known cursor a reconnect "from now" could miss changes: replay everything.
        if cursor.is_none() {
            cursor = Some(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The uid and gid owning `path` (for `/proc/self`: this process's), if it can be read.
fn owner_of(path: &str) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

/// How many more times an unmount (`aether unmount`, or the mount process on a signal) tries a
/// mount that answered busy.
const UNMOUNT_TRIES: usize = 4;

/// Unmount `dir`; a busy answer is tried again [`UNMOUNT_TRIES`] times before it is believed,
/// because the mount's own kernel cache refresh (`kernel_warm`) keeps a directory open for a few
/// microseconds at a time. `Ok(false)`: still mounted (busy, or not a mount).
fn unmount_retrying(dir: &Path) -> std::io::Result<bool> {
    let mut unmounted = unmount_dir(dir);
    for _ in 0..UNMOUNT_TRIES {
        if !matches!(unmounted, Ok(false)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        unmounted = unmount_dir(dir);
    }
    unmounted
}

fn unmount_dir(dir: &Path) -> std::io::Result<bool> {
    for (tool, args) in [
        ("fusermount3", vec!["-u"]),
        ("fusermount", vec!["-u"]),
        ("umount", vec![]),
    ] {
        match Command::new(tool).args(&args).arg(dir).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Unmount, then wait for the mount process's exit status: returns once the server holds every
/// write the mount accepted, or fails naming what it does not hold.
pub fn unmount(args: UnmountArgs, out: Out) -> Result<()> {
    let dir = absolute(&args.dir)?;
    let cache_root = cache_dir(&args.cache_dir)?;
    let mut records = Records::new(&records_root(&args.cache_dir)?, &dir);
    if records.server().is_none() {
        // A mount made by an older version recorded itself in its own cache directory.
        let legacy = Records::new(&cache_root, &dir);
        if legacy.server().is_some() {
            records = legacy;
        }
    }
    let server = records.server();
    if server.is_none() && is_mount_point(&dir) {
        // Unmounting without waiting would give up the promise that the writes are sent.
        return Err(CliError::new(
            Kind::NotFound,
            format!(
                "no aether mount process is recorded for {} in {}",
                dir.display(),
                records_root(&args.cache_dir)?.join("mounts").display()
            ),
            "pass the --cache-dir it was mounted with ('fusermount3 -u DIR' unmounts without waiting for its writes)",
        ));
    }
    let was_alive = server.is_some_and(|p| p.alive());
    match unmount_retrying(&dir) {
        Ok(true) => {}
        Ok(false) => {
            return Err(CliError::new(
                Kind::NotFound,
                format!("{} is not an aether mount (or it is busy)", dir.display()),
                "close programs using it (lsof +D DIR) and retry",
            ));
        }
        Err(e) => return Err(CliError::io("cannot run fusermount3", e)),
    }
    let status = match server {
        Some(p) if was_alive => wait_for_status(&records, p),
        _ => None,
    };
    let Some(status) = status else {
        return Err(CliError::new(
            Kind::Other,
            format!(
                "unmounted {}, but its mount process {} without saying whether the server holds \
                 every write: writes it had not sent are lost",
                dir.display(),
                if was_alive { "exited" } else { "had stopped already" }
            ),
            format!(
                "see the mount's log; refused uploads are kept in {}",
                cache_root.join("lost+found").display()
            ),
        ));
    };
    if let Some(e) = not_on_server_error(&dir, &status) {
        return Err(e);
    }
    if out.json {
        output::print_json(&serde_json::json!({"unmounted": dir.display().to_string()}));
    } else {
        println!("unmounted {}", dir.display());
    }
    Ok(())
}

/// Wait while `server` lives for the exit status it leaves once it has sent what it could.
/// How long a mount process that has written its status may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(10);

fn wait_for_status(records: &Records, server: Process) -> Option<ExitStatus> {
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        if let Some(s) = records.take_status(server.pid) {
            // The status is the process's last word; let it finish exiting too, so nothing of
            // the mount is left running when the unmount returns (a script may mount again).
            let exiting = std::time::Instant::now();
            while server.alive() && exiting.elapsed() < EXIT_GRACE {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Some(s);
        }
        if !server.alive() {
            return records.take_status(server.pid);
        }
        if !told && start.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "waiting for the mount process (pid {}) to send the writes it holds",
                server.pid
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `dir` (absolute, canonical) is a mount point, from `/proc/self/mountinfo`.
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(&unescape_mountinfo(p)) == dir)
}

/// A mountinfo path field with its octal escapes (`\040` for a space) decoded.
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn cache(cmd: CacheCmd, out: Out) -> Result<()> {
    match cmd {
        CacheCmd::Stats { cache_dir: d } => {
            let root = cache_dir(&d)?;
            let usage = content_cache::disk_usage(&root)
                .map_err(|e| CliError::io(format!("cannot read {}", root.display()), e))?;
            let integrity = usage.integrity;
            if out.json {
                output::print_json(&serde_json::json!({
                    "dir": root.display().to_string(), "bytes": usage.bytes, "blocks": usage.blocks,
                    "corrupt_blocks_dropped": integrity.corrupt_blocks_dropped,
                    "verification_failures": integrity.verification_failures,
                }));
            } else {
                println!(
                    "{}",
                    output::fields(&[
                        ("dir", root.display().to_string()),
                        ("size", output::size(usage.bytes)),
                        ("blocks", usage.blocks.to_string()),
                        ("corrupt blocks dropped", integrity.corrupt_blocks_dropped.to_string()),
                        ("verification failures", integrity.verification_failures.to_string()),
                    ])
                );
            }
        }
        CacheCmd::Clear { cache_dir: d } => {
            let root = cache_dir(&d)?;
            content_cache::clear(&root).map_err(|e| CliError::io(format!("cannot clear {}", root.display()), e))?;
            if out.json {
                output::print_json(&serde_json::json!({"cleared": root.display().to_string()}));
            } else {
                println!("cleared {}", root.display());
            }
        }
    }
    Ok(())
}

/// The mount logs through `tracing`: to `--log-file` when given, else to standard error (a
/// background mount's standard error is its log file or nothing).
pub fn init_logging(args: &MountArgs, level: Option<&str>, verbose: u8) {
    let level = match (level, verbose) {
        (Some(l), _) => l.to_owned(),
        (None, 0) => "warn".into(),
        (None, 1) => "info".into(),
        (None, _) => "debug".into(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!("aether_cli={level},fuser=error"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    let file = args
        .log_file
        .as_ref()
        .filter(|_| args.foreground)
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let _ = match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}
