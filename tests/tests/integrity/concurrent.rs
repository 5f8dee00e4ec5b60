//! The concurrent-writer checker: REST, gRPC and two mounts write self-describing versions of
//! the same files (each mount with write + `fsync` + close: a mount write counts as acknowledged
//! only when `fsync` returned 0) while readers on every surface (REST whole and `Range`, gRPC
//! whole and at offsets, both writing mounts and a third read-only mount) check that every read
//! is one whole version; checkpoints and forks are taken meanwhile and checked afterwards. At the
//! end (writers stopped, mounts unmounted) every file must hold a version no later-started
//! acknowledged write superseded. Torn reads, hung requests, missing acknowledged writes and
//! failed requests must all be zero; the counts are printed. A mount read that fails with ESTALE
//! (a descriptor that could not go on reading the version it opened) is an error.
//!
//! A mount sees no `close`: it sends a file once its writes have settled, so while a process is
//! still writing a file through a mount the server may briefly hold the pages the kernel wrote
//! back so far: a page-aligned prefix of the new version, or its length with some pages still
//! zeros (the kernel writes pages back in no set order; another NFS client may see the same).
//! Such a read started before the mount writer's `fsync` returned is counted apart ("in-flight
//! prefixes") and shown; the same read started after that `fsync` returned, a page of any other
//! version's bytes, or such a state of a REST or gRPC version (those are written whole), is torn.
//!
//! It runs `AETHER_INTEGRITY_SECS` seconds (default 20). A soak:
//! `AETHER_INTEGRITY_SECS=600 cargo test -p aether-tests --test integrity concurrent_writers -- --nocapture`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aether_proto::v1 as pb;
use aether_tests::env::Env;
use aether_tests::grpc::GrpcError;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::prereq;
use aether_tests::report::Differences;
use aether_tests::rest::HttpError;
use aether_tests::seeded::Rng;
use aether_tests::versions::{self, CELL, Ledger, SMALLEST, Version};

use crate::env;

const FILES: u16 = 40;
const REST: u8 = 0;
const GRPC: u8 = 1;
const MOUNT_A: u8 = 2;
const MOUNT_B: u8 = 3;
const WRITERS: [(u8, &str); 4] = [
    (REST, "REST"),
    (GRPC, "gRPC"),
    (MOUNT_A, "mount A"),
    (MOUNT_B, "mount B"),
];
/// Version sizes: empty, a few bytes, a page, 200 KB, 1.5 MiB (chunked on the server).
const SIZES: [u32; 5] = [0, SMALLEST, 4096, 200_000, 1_572_864];
/// How often each size is chosen (of 10).
const WEIGHTS: [u64; 5] = [1, 3, 3, 2, 1];
/// Linux's errno for a stale file handle.
const ESTALE: i32 = 116;
/// The kernel writes a mount's file back in pages.
const PAGE: usize = 4096;
/// Any single request or read longer than this is a hung one.
const HUNG: Duration = Duration::from_secs(30);

fn path_of(file: u16) -> String {
    format!("c/f{file:02}")
}

fn pick_len(rng: &mut Rng) -> u32 {
    let mut r = rng.below(WEIGHTS.iter().sum());
    for (i, w) in WEIGHTS.iter().enumerate() {
        if r < *w {
            return SIZES[i];
        }
        r -= w;
    }
    SIZES[0]
}

fn secs() -> u64 {
    std::env::var("AETHER_INTEGRITY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Counters of one reading surface.
#[derive(Default)]
struct Surface {
    checked: AtomicU64,
    torn: AtomicU64,
    hung: AtomicU64,
    errors: AtomicU64,
    /// Reads of a file the same mount was writing at that moment (not judged).
    skipped: AtomicU64,
    /// Mount reads that failed with ESTALE (each also an error).
    stale: AtomicU64,
    /// Whole reads that were a page-aligned prefix of a version a mount was still writing.
    prefixes: AtomicU64,
}

struct Shared {
    ledger: Ledger,
    stop: AtomicBool,
    diffs: Differences,
    surfaces: BTreeMap<&'static str, Surface>,
    /// Per writing mount and file: a counter that is odd while that mount writes the file.
    local: [Vec<AtomicU64>; 2],
    hung_writes: AtomicU64,
}

impl Shared {
    fn surface(&self, name: &str) -> &Surface {
        &self.surfaces[name]
    }

    /// Judge one read of `file` (`data` from `offset`; `whole`: the whole file), which started
    /// at tick `since` (for a checkpoint or fork: when it was taken).
    fn judge(&self, surface: &str, file: u16, data: &[u8], offset: u64, whole: bool, since: u64) {
        let s = self.surface(surface);
        s.checked.fetch_add(1, Ordering::Relaxed);
        let verdict = if data.is_empty() {
            // Empty past the start is a read past the end; empty from 0 needs an empty version.
            if offset > 0 || self.ledger.empty_explained(file) {
                Ok(())
            } else {
                Err("empty, but nothing emptied the file".to_owned())
            }
        } else {
            match versions::check(file, data, offset, whole) {
                Ok(v) if self.ledger.known(&v) => Ok(()),
                Ok(v) => Err(format!("{v} was never written")),
                Err(e) => match versions::check_pages(file, data, offset, PAGE) {
                    Ok(v) if self.in_flight_prefix(&v, offset as usize + data.len(), since, whole) => {
                        s.prefixes.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(v) => Err(format!("{e} (pages of {v}, not while a mount was writing it)")),
                    // Nothing but zeros: the pages a mount had extended the file with, none
                    // written back yet, while it was writing a version at least this long.
                    Err(pages)
                        if pages == versions::ALL_ZEROS
                            && self.ledger.mount_in_flight_after(
                                file,
                                &[MOUNT_A, MOUNT_B],
                                offset as usize + data.len(),
                                since,
                            ) =>
                    {
                        s.prefixes.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(pages) => Err(format!("{e}; {pages}")),
                },
            }
        };
        if let Err(e) = verdict {
            s.torn.fetch_add(1, Ordering::Relaxed);
            self.diffs.add(surface, path_of(file), format!("torn read: {e}"));
        }
    }

    /// Whether a read that ended at `end` (the whole file's length when `whole`) of the pages
    /// of `v` is the server holding the pages a mount had written back of a version it was
    /// still writing (see the module doc).
    fn in_flight_prefix(&self, v: &Version, end: usize, since: u64, whole: bool) -> bool {
        (v.writer == MOUNT_A || v.writer == MOUNT_B)
            && end <= v.len as usize
            && (!whole || end == v.len as usize || end.is_multiple_of(PAGE))
            && self.ledger.in_flight_after(v, since)
    }

    /// Judge the length a ranged read announced (`what`: Content-Range total, stat size) for
    /// bytes of `v`: it must be `v`'s length, or a page-aligned prefix of a version a mount was
    /// still writing when the read started (the server holding that mount's written-back pages).
    fn judge_length(&self, surface: &str, file: u16, v: &Version, len: u64, since: u64, what: &str) {
        if u64::from(v.len) == len {
            return;
        }
        let s = self.surface(surface);
        if len < u64::from(v.len) && self.in_flight_prefix(v, len as usize, since, true) {
            s.prefixes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        s.torn.fetch_add(1, Ordering::Relaxed);
        self.diffs
            .add(surface, path_of(file), format!("{what} {len} for bytes of {v}"));
    }

    fn hung(&self, surface: &str, file: u16, what: String) {
        self.surface(surface).hung.fetch_add(1, Ordering::Relaxed);
        self.diffs.add(surface, path_of(file), format!("hung: {what}"));
    }

    fn error(&self, surface: &str, file: u16, what: String) {
        let s = self.surface(surface);
        let n = s.errors.fetch_add(1, Ordering::Relaxed);
        if n < 20 {
            self.diffs.add(surface, path_of(file), format!("error: {what}"));
        }
    }
}

fn rest_writer(env: &Env, session: &str, sh: &Shared) {
    let mut rng = Rng::new(11);
    let mut seq = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        seq += 1;
        let v = Version {
            file: rng.below(u64::from(FILES)) as u16,
            writer: REST,
            seq,
            len: pick_len(&mut rng),
        };
        sh.ledger.start(v);
        let r = env
            .rest
            .put_file(session, path_of(v.file).as_bytes(), versions::bytes(&v), None);
        sh.ledger.finish(v, matches!(&r, Ok(r) if r.status == 200));
        if let Err(HttpError::Timeout(_)) = r {
            sh.hung_writes.fetch_add(1, Ordering::Relaxed);
            sh.diffs.add("REST writer", path_of(v.file), format!("PUT of {v} hung"));
        }
    }
}

fn grpc_writer(env: &Env, session: &str, sh: &Shared) {
    let mut rng = Rng::new(12);
    let mut seq = 0;
    while !sh.stop.load(Ordering::Relaxed) {
        seq += 1;
        let v = Version {
            file: rng.below(u64::from(FILES)) as u16,
            writer: GRPC,
            seq,
            len: pick_len(&mut rng),
        };
        sh.ledger.start(v);
        let data = versions::bytes(&v);
        let ok = if seq % 2 == 0 {
            let r = env.grpc.write_file(session, &path_of(v.file), &data, None, 256 * 1024);
            if let Err(GrpcError::Timeout(_)) = r {
                sh.hung_writes.fetch_add(1, Ordering::Relaxed);
            }
            r.is_ok()
        } else {
            let change = pb::BatchChange {
                op: Some(pb::batch_change::Op::Put(pb::BatchPut {
                    path: path_of(v.file),
                    data,
                    mode: None,
                    no_parents: false,
                    mtime_ns: None,
                })),
            };
            matches!(env.grpc.apply_batch(session, vec![change]), Ok(r) if r.applied == 1 && r.error.is_none())
        };
        sh.ledger.finish(v, ok);
    }
}

/// A mount writer: open with O_TRUNC, write, fsync, close; acknowledged when fsync returned 0.
fn mount_writer(root: PathBuf, writer: u8, sh: &Shared) {
    let mut rng = Rng::new(u64::from(writer) + 20);
    let mut seq = 0;
    let local = &sh.local[usize::from(writer - MOUNT_A)];
    let name = WRITERS[usize::from(writer)].1;
    while !sh.stop.load(Ordering::Relaxed) {
        seq += 1;
        let v = Version {
            file: rng.below(u64::from(FILES)) as u16,
            writer,
            seq,
            len: pick_len(&mut rng),
        };
        let busy = &local[usize::from(v.file)];
        busy.fetch_add(1, Ordering::SeqCst);
        sh.ledger.truncation(v.file, writer);
        sh.ledger.start(v);
        let result = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(root.join(path_of(v.file)))
            .and_then(|mut f| {
                f.write_all(&versions::bytes(&v))?;
                f.sync_all()
            });
        sh.ledger.finish(v, result.is_ok());
        busy.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = result {
            sh.error(name, v.file, format!("write of {v}: {e}"));
        }
    }
}

fn rest_reader(env: &Env, session: &str, sh: &Shared, seed: u64, ranged: bool) {
    let surface = if ranged { "REST Range" } else { "REST" };
    let mut rng = Rng::new(seed);
    while !sh.stop.load(Ordering::Relaxed) {
        let file = rng.below(u64::from(FILES)) as u16;
        let range = ranged.then(|| {
            let start = rng.below(1_600_000 / CELL as u64) * CELL as u64;
            (start, start + 128 + rng.below(300_000))
        });
        let since = sh.ledger.tick();
        match env.rest.get_file(session, path_of(file).as_bytes(), range, None, HUNG) {
            Ok(r) if r.status == 200 && range.is_none() => sh.judge(surface, file, &r.body, 0, true, since),
            Ok(r) if r.status == 206 => {
                let start = range.map(|r| r.0).unwrap_or(0);
                // The total in Content-Range must be the length of the version served.
                let total: Option<u64> = r
                    .header("content-range")
                    .and_then(|cr| cr.rsplit('/').next().and_then(|t| t.parse().ok()));
                sh.judge(surface, file, &r.body, start, false, since);
                if let (Some(t), Ok(v)) = (total, versions::check(file, &r.body, start, false)) {
                    sh.judge_length(surface, file, &v, t, since, "Content-Range total");
                }
            }
            Ok(r) if r.status == 416 && ranged => {}
            Ok(r) => sh.error(surface, file, format!("status {}: {}", r.status, r.text())),
            Err(HttpError::Timeout(d)) => sh.hung(
                surface,
                file,
                format!("GET {range:?} gave no complete response in {d:?}"),
            ),
            Err(e) => sh.error(surface, file, e.to_string()),
        }
    }
}

fn grpc_reader(env: &Env, session: &str, sh: &Shared, seed: u64, ranged: bool) {
    let surface = if ranged { "gRPC at offsets" } else { "gRPC" };
    let mut rng = Rng::new(seed);
    while !sh.stop.load(Ordering::Relaxed) {
        let file = rng.below(u64::from(FILES)) as u16;
        let (offset, length) = if ranged {
            (
                rng.below(1_600_000 / CELL as u64) * CELL as u64,
                Some(128 + rng.below(300_000)),
            )
        } else {
            (0, None)
        };
        let since = sh.ledger.tick();
        match env.grpc.read_file(session, &path_of(file), offset, length, None, HUNG) {
            Ok(r) => {
                if offset >= r.stat.size && r.data.is_empty() {
                    continue;
                }
                // As many bytes as the stat says are there (from the offset, up to the length).
                let want = (r.stat.size - offset.min(r.stat.size)).min(length.unwrap_or(u64::MAX));
                if r.data.len() as u64 != want {
                    sh.surface(surface).torn.fetch_add(1, Ordering::Relaxed);
                    sh.diffs.add(
                        surface,
                        path_of(file),
                        format!(
                            "{} bytes at offset {offset} from a file whose stat says {} bytes",
                            r.data.len(),
                            r.stat.size
                        ),
                    );
                    continue;
                }
                sh.judge(surface, file, &r.data, offset, !ranged, since);
                if let Ok(v) = versions::check(file, &r.data, offset, !ranged) {
                    sh.judge_length(surface, file, &v, r.stat.size, since, "stat size");
                }
            }
            Err(GrpcError::Timeout(d)) => sh.hung(surface, file, format!("ReadFile gave no complete reply in {d:?}")),
            Err(GrpcError::Status { code, .. }) if ranged && code == tonic::Code::OutOfRange => {}
            Err(e) => sh.error(surface, file, e.to_string()),
        }
    }
}

/// Reads whole files through a mount; `writer`: the mount's own writer, whose in-flight files
/// are not judged (a reader on the same mount may see a local write half done, as on ext4).
fn mount_reader(root: PathBuf, surface: &'static str, writer: Option<u8>, sh: &Shared, seed: u64) {
    let mut rng = Rng::new(seed);
    while !sh.stop.load(Ordering::Relaxed) {
        let file = rng.below(u64::from(FILES)) as u16;
        let busy = writer.map(|w| &sh.local[usize::from(w - MOUNT_A)][usize::from(file)]);
        let before = busy.map(|g| g.load(Ordering::SeqCst));
        let since = sh.ledger.tick();
        let r = std::fs::read(root.join(path_of(file)));
        let after = busy.map(|g| g.load(Ordering::SeqCst));
        if before != after || before.is_some_and(|b| b % 2 == 1) {
            sh.surface(surface).skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match r {
            Ok(data) => sh.judge(surface, file, &data, 0, true, since),
            // The file was replaced on the server while the descriptor read it: it must go on
            // reading the version it opened (the server serves what the session held lately),
            // as on a local disk. Counted and reported as an error.
            Err(e) if e.raw_os_error() == Some(ESTALE) => {
                sh.surface(surface).stale.fetch_add(1, Ordering::Relaxed);
                sh.error(surface, file, format!("read of the version opened: {e}"));
            }
            Err(e) => sh.error(surface, file, format!("read: {e}")),
        }
    }
}

/// Checkpoints and forks taken while everything runs; checked once the run ends.
/// Checkpoints and forks taken, each with the tick just before it was asked for.
type History = (Vec<(u64, u64)>, Vec<(String, u64)>);

fn history_taker(env: &Env, session: &str, sh: &Shared) -> History {
    let (mut checkpoints, mut forks) = (Vec::new(), Vec::new());
    let mut grpc = false;
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1500));
        // Checkpoints alternate between REST and gRPC.
        grpc = !grpc;
        let since = sh.ledger.tick();
        let made = if grpc {
            env.grpc
                .checkpoint(session)
                .map(|c| c.number)
                .map_err(|e| e.to_string())
        } else {
            env.rest.checkpoint(session)
        };
        match made {
            Ok(n) => checkpoints.push((n, since)),
            Err(e) => sh.diffs.add("checkpoints", "(create)", e),
        }
        let since = sh.ledger.tick();
        match env.rest.fork(session, None) {
            Ok(f) => forks.push((f, since)),
            Err(e) => sh.diffs.add("forks", "(create)", e),
        }
    }
    (checkpoints, forks)
}

#[test]
fn concurrent_writers_never_tear_or_lose_a_write() {
    if !prereq::fuse("concurrent_writers_never_tear_or_lose_a_write") {
        return;
    }
    let env = env();
    let session = env.new_session();
    let names: Vec<&'static str> = vec![
        "REST",
        "REST Range",
        "gRPC",
        "gRPC at offsets",
        "mount A",
        "mount B",
        "mount C (read-only)",
        "checkpoints",
        "forks",
        "final",
    ];
    let sh = Arc::new(Shared {
        ledger: Ledger::default(),
        stop: AtomicBool::new(false),
        diffs: Differences::new(),
        surfaces: names.iter().map(|n| (*n, Surface::default())).collect(),
        local: [
            (0..FILES).map(|_| AtomicU64::new(0)).collect(),
            (0..FILES).map(|_| AtomicU64::new(0)).collect(),
        ],
        hung_writes: AtomicU64::new(0),
    });

    // Every file starts with a version written over REST.
    for file in 0..FILES {
        let v = Version {
            file,
            writer: REST,
            seq: 1_000_000 + u32::from(file),
            len: 4096,
        };
        sh.ledger.start(v);
        let r = env
            .rest
            .put_file(&session, path_of(file).as_bytes(), versions::bytes(&v), None);
        assert!(matches!(&r, Ok(r) if r.status == 200), "initial PUT of {v}: {r:?}");
        sh.ledger.finish(v, true);
    }
    let opts = MountOptions::default();
    let ma = Mount::new(&env, &session, &env.dir("a"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let mb = Mount::new(&env, &session, &env.dir("b"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let ro = MountOptions {
        read_only: true,
        ..opts.clone()
    };
    let mc = Mount::new(&env, &session, &env.dir("c"), &ro).unwrap_or_else(|e| panic!("{e}"));

    let run_for = Duration::from_secs(secs());
    let started = Instant::now();
    let (history, joined_all) = std::thread::scope(|scope| {
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        writers.push(scope.spawn(|| rest_writer(&env, &session, &sh)));
        writers.push(scope.spawn(|| grpc_writer(&env, &session, &sh)));
        let (ra, rb, rc) = (ma.root().to_owned(), mb.root().to_owned(), mc.root().to_owned());
        {
            let (ra, rb) = (ra.clone(), rb.clone());
            let sh: &Shared = &sh;
            writers.push(scope.spawn(move || mount_writer(ra, MOUNT_A, sh)));
            writers.push(scope.spawn(move || mount_writer(rb, MOUNT_B, sh)));
        }
        readers.push(scope.spawn(|| rest_reader(&env, &session, &sh, 101, false)));
        readers.push(scope.spawn(|| rest_reader(&env, &session, &sh, 102, false)));
        readers.push(scope.spawn(|| rest_reader(&env, &session, &sh, 103, true)));
        readers.push(scope.spawn(|| grpc_reader(&env, &session, &sh, 104, false)));
        readers.push(scope.spawn(|| grpc_reader(&env, &session, &sh, 105, true)));
        {
            let sh: &Shared = &sh;
            readers.push(scope.spawn(move || mount_reader(ra, "mount A", Some(MOUNT_A), sh, 106)));
            readers.push(scope.spawn(move || mount_reader(rb, "mount B", Some(MOUNT_B), sh, 107)));
            readers.push(scope.spawn(move || mount_reader(rc, "mount C (read-only)", None, sh, 108)));
        }
        let history = scope.spawn(|| history_taker(&env, &session, &sh));
        std::thread::sleep(run_for);
        sh.stop.store(true, Ordering::Relaxed);
        // Everything must stop within a bound; a thread stuck in a hung call is counted.
        let deadline = Instant::now() + HUNG * 4;
        let mut stuck = 0;
        for t in writers.iter().chain(readers.iter()) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            stuck += u64::from(!t.is_finished());
        }
        if stuck > 0 {
            // Unblock reads and writes stuck in a mount so the scope can end.
            sh.hung_writes.fetch_add(stuck, Ordering::Relaxed);
            sh.diffs.add(
                "threads",
                "(stop)",
                format!("{stuck} writers or readers still stuck 120 s after the stop"),
            );
            for m in [&ma, &mb, &mc] {
                m.kill();
            }
        }
        (history.join().unwrap_or_default(), stuck == 0)
    });
    let elapsed = started.elapsed();

    // Writers stopped: unmount (the barrier), then judge what the server holds.
    for (m, name) in [(ma, "mount A"), (mb, "mount B"), (mc, "mount C (read-only)")] {
        if !joined_all {
            m.abort();
        } else if let Err(e) = m.unmount() {
            sh.diffs.add(name, "(unmount)", e);
        }
    }
    let mut missing = 0;
    for file in 0..FILES {
        let last = match env.rest.get_file(&session, path_of(file).as_bytes(), None, None, HUNG) {
            Ok(r) if r.status == 200 && r.body.is_empty() => Ok(None),
            Ok(r) if r.status == 200 => versions::check(file, &r.body, 0, true).map(Some),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        };
        sh.surface("final").checked.fetch_add(1, Ordering::Relaxed);
        let verdict = last.and_then(|v| sh.ledger.judge_final(file, v));
        if let Err(e) = verdict {
            missing += 1;
            sh.diffs
                .add("final", path_of(file), format!("acknowledged write missing: {e}"));
        }
    }

    // Every checkpoint and fork holds whole versions only.
    let (checkpoints, forks) = history;
    for (n, since) in &checkpoints {
        let at = format!("checkpoints/{n}");
        for file in 0..FILES {
            match env
                .rest
                .get_file(&session, path_of(file).as_bytes(), None, Some(&at), HUNG)
            {
                Ok(r) if r.status == 200 => sh.judge("checkpoints", file, &r.body, 0, true, *since),
                Ok(r) => sh.error("checkpoints", file, format!("{at}: status {}", r.status)),
                Err(e) => sh.error("checkpoints", file, format!("{at}: {e}")),
            }
        }
    }
    for (f, since) in &forks {
        for file in 0..FILES {
            match env.rest.get_file(f, path_of(file).as_bytes(), None, None, HUNG) {
                Ok(r) if r.status == 200 => sh.judge("forks", file, &r.body, 0, true, *since),
                Ok(r) => sh.error("forks", file, format!("fork {f}: status {}", r.status)),
                Err(e) => sh.error("forks", file, format!("fork {f}: {e}")),
            }
        }
    }

    // The counts.
    let mut report = format!(
        "concurrent writers: {elapsed:.1?}, {FILES} files, {} checkpoints, {} forks\n",
        checkpoints.len(),
        forks.len()
    );
    for (w, name) in WRITERS {
        report.push_str(&format!(
            "  writes {name:>8}: {} started, {} acknowledged, {} failed\n",
            sh.ledger.started_by(w),
            sh.ledger.acked_by(w),
            sh.ledger.failed_by(w)
        ));
    }
    let (mut torn, mut hung, mut errors) = (0, sh.hung_writes.load(Ordering::Relaxed), 0);
    for (name, s) in &sh.surfaces {
        let t = s.torn.load(Ordering::Relaxed);
        let h = s.hung.load(Ordering::Relaxed);
        torn += t;
        hung += h;
        errors += s.errors.load(Ordering::Relaxed);
        report.push_str(&format!(
            "  reads {name:>20}: {} checked, {t} torn, {h} hung, {} errors, {} skipped (own write in flight), {} in-flight prefixes, {} ESTALE\n",
            s.checked.load(Ordering::Relaxed),
            s.errors.load(Ordering::Relaxed),
            s.skipped.load(Ordering::Relaxed),
            s.prefixes.load(Ordering::Relaxed),
            s.stale.load(Ordering::Relaxed)
        ));
    }
    report.push_str(&format!(
        "  torn {torn}, hung {hung}, acknowledged writes missing {missing}, failed requests {errors}\n"
    ));
    eprintln!("{report}");

    // Nothing vacuous: every writer and every reading surface did real work.
    for (w, name) in WRITERS {
        if sh.ledger.acked_by(w) < 5 {
            sh.diffs.add(
                name,
                "(coverage)",
                format!("only {} acknowledged writes", sh.ledger.acked_by(w)),
            );
        }
    }
    for name in &names {
        let n = sh.surface(name).checked.load(Ordering::Relaxed);
        let least = if *name == "final" { u64::from(FILES) } else { 5 };
        if n < least {
            sh.diffs.add(name, "(coverage)", format!("only {n} reads checked"));
        }
    }
    if !sh.diffs.is_empty() {
        eprintln!("{}\nserver log:\n{}", env.server.health(), env.server.log_tail(30));
    }
    sh.diffs
        .assert_none(&format!("concurrent writers ({})", report.trim_end()));
}

/// `fsync` through a mount returns 0 only for bytes the server holds: open with O_TRUNC (the
/// empty file is uploaded), another client PUTs the file, the directory is listed through the
/// mount, then write + fsync + close on the open descriptor.
#[test]
fn fsync_after_a_concurrent_put_reports_only_what_the_server_holds() {
    if !prereq::fuse("fsync_after_a_concurrent_put_reports_only_what_the_server_holds") {
        return;
    }
    let env = env();
    let s = env.new_session();
    env.rest.mkdir(&s, "d", true).unwrap();
    let m = Mount::new(&env, &s, &env.dir("m"), &MountOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let diffs = Differences::new();
    for round in 0..3 {
        let name = format!("d/x{round}");
        let surface = format!("round {round}");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.root().join(&name))
            .unwrap();
        // The truncated file reaches the server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !matches!(env.rest.get_file(&s, name.as_bytes(), None, None, HUNG), Ok(r) if r.status == 200)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let other = format!("bytes of another client, round {round}\n")
            .repeat(100)
            .into_bytes();
        let put = env.rest.put_file(&s, name.as_bytes(), other, None);
        assert!(matches!(&put, Ok(r) if r.status == 200), "{put:?}");
        // The mount lists the directory (and sees the change) while the descriptor is open.
        for _ in 0..20 {
            let _ = std::fs::read_dir(m.root().join("d")).map(|rd| rd.count());
            let _ = std::fs::metadata(m.root().join(&name));
            std::thread::sleep(Duration::from_millis(100));
        }
        let mine = format!("the mount's bytes, round {round}\n").repeat(50).into_bytes();
        let written = f.write_all(&mine).and_then(|()| f.sync_all());
        drop(f);
        match written {
            Ok(()) => match env.rest.get_file(&s, name.as_bytes(), None, None, HUNG) {
                Ok(r) if r.status == 200 && r.body == mine => {}
                Ok(r) => diffs.add(
                    &surface,
                    name.clone(),
                    format!(
                        "fsync returned 0 but the server holds {} other bytes ({:?}...)",
                        r.body.len(),
                        String::from_utf8_lossy(&r.body[..r.body.len().min(40)])
                    ),
                ),
                Err(e) => diffs.add(&surface, name.clone(), e.to_string()),
            },
            Err(e) => eprintln!("[integrity] round {round}: fsync failed ({e}): allowed, never reported as success"),
        }
    }
    if let Err(e) = m.unmount() {
        diffs.add("unmount", "(unmount)", e);
    }
    diffs.assert_none("fsync after a concurrent PUT");
}
