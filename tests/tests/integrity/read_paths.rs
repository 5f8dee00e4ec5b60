//! Every read path, over a session the corpus was written to over REST: REST (listing, whole
//! reads, `Range` at page, block and chunk edges), gRPC (`ListTree`/`Stat` walk, `ReadFile` whole
//! and at offsets), tar and tar.gz export (raw headers), reads and exports at a checkpoint, a
//! `git clone` of a commit, and mounts: 16 concurrent readers on a cold mount, a second mount
//! reading the first one's disk cache, a fork's mount, and a mount at a checkpoint.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aether_tests::corpus::{Corpus, git_projection, names, tree_spelling};
use aether_tests::env::Env;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::readback::{self, Coverage, Report, boundary_ranges};
use aether_tests::report::Differences;
use aether_tests::runtime::thread_with_limit;
use aether_tests::snapshot::{Kind, Snapshot, show};
use aether_tests::{git, prereq, upload};

use crate::corpus::normalise_checkout;
use crate::{corpus, env, step};

/// A session holding the corpus, written over REST (its own test checks that path).
fn session_with_corpus(env: &Env, diffs: &Differences) -> String {
    let c = corpus();
    let s = env.new_session();
    step("REST upload", || {
        upload::rest(&env.rest, &s, c, &c.snapshot, "setup: REST write", diffs)
    });
    s
}

/// Ranges [`boundary_ranges`] gives every file of `tree` at least (chunk edges add more).
fn least_ranges(tree: &Snapshot) -> u64 {
    tree.entries
        .values()
        .filter(|e| e.kind == Kind::File && e.size > 1)
        .map(|e| boundary_ranges(e.size, &[]).len() as u64)
        .sum()
}

#[test]
fn server_read_paths_return_what_went_in() {
    if !prereq::git("server_read_paths_return_what_went_in") {
        return;
    }
    let (c, env) = (corpus(), env());
    let diffs = Differences::new();
    let s = session_with_corpus(&env, &diffs);
    let tree = &c.snapshot;
    let (files, bytes, ranges) = (tree.count(Kind::File), tree.file_bytes(), least_ranges(tree));

    rest_reads(&env, &s, None, "REST", &diffs, true);

    let cov = Coverage::default();
    let rep = Report {
        surface: "gRPC",
        diffs: &diffs,
        cov: &cov,
    };
    if let Some(got) = step("gRPC walk and reads", || {
        readback::grpc_snapshot(&env.grpc, &s, None, rep)
    }) {
        tree.compare(&got, rep.surface, &diffs);
    }
    step("gRPC ranges", || {
        readback::grpc_ranges(&env.grpc, &s, None, c, tree, rep)
    });
    rep.require(files, bytes, ranges);

    export_rest(&env, &s, None, tree, "tar export (REST)", &diffs);
    // tar.gz through the CLI (gRPC ExportTar).
    let cov = Coverage::default();
    let rep = Report {
        surface: "tar.gz export (aether export)",
        diffs: &diffs,
        cov: &cov,
    };
    let out = env.home().join("export.tar.gz");
    let r = env.run(&["export", &s, "-o", out.to_str().unwrap()], Duration::from_secs(300));
    if r.code == 0 {
        let bytes_gz = std::fs::read(&out).unwrap();
        if let Some(got) = readback::archive_snapshot(&bytes_gz, true, rep) {
            tree.compare(&got, rep.surface, &diffs);
        }
        rep.require(files, bytes, 0);
    } else {
        rep.add("(export)", r.transcript());
    }

    // The same at a checkpoint: ?at= reads, listings and export keep empty directories and modes.
    let mut checkpoint = None;
    match env.rest.checkpoint(&s) {
        Ok(n) => {
            let at = format!("checkpoints/{n}");
            checkpoint = Some(at.clone());
            rest_reads(&env, &s, Some(&at), "REST ?at=checkpoint", &diffs, false);
            let cov = Coverage::default();
            let rep = Report {
                surface: "gRPC at=checkpoint",
                diffs: &diffs,
                cov: &cov,
            };
            if let Some(got) = step("gRPC at a checkpoint", || {
                readback::grpc_snapshot(&env.grpc, &s, Some(&at), rep)
            }) {
                tree.compare(&got, rep.surface, &diffs);
            }
            rep.require(files, bytes, 0);
            export_rest(&env, &s, Some(&at), tree, "tar export ?at=checkpoint", &diffs);
        }
        Err(e) => diffs.add("checkpoint", "(create)", e),
    }
    // And at a commit of the session's branch.
    match env.rest.commit(&s, "the integrity corpus") {
        Ok(c) => {
            let at = c["id"].as_str().unwrap_or_default().to_owned();
            rest_reads(&env, &s, Some(&at), "REST ?at=commit", &diffs, false);
            export_rest(&env, &s, Some(&at), tree, "tar export ?at=commit", &diffs);
        }
        Err(e) => diffs.add("commit", "(create)", e),
    }
    // A collection packs every loose object (the bytes move from one file per object into a
    // pack): the same bytes read back from there, at the head and at the checkpoint.
    match env.rest.gc() {
        Ok(report) if report["loose_objects_packed"].as_u64().unwrap_or(0) >= files as u64 / 2 => {
            rest_reads(&env, &s, None, "REST after packing", &diffs, true);
            if let Some(at) = &checkpoint {
                export_rest(
                    &env,
                    &s,
                    Some(at),
                    tree,
                    "tar export ?at=checkpoint after packing",
                    &diffs,
                );
            }
        }
        Ok(report) => diffs.add("gc", "(packing)", format!("packed too little: {report}")),
        Err(e) => diffs.add("gc", "(packing)", e),
    }
    diffs.assert_none("server read paths");
}

/// The corpus read back over REST (listing and whole reads, with `ranges` reads at page, block
/// and chunk edges too) at `at`, compared with what went in.
fn rest_reads(env: &Env, s: &str, at: Option<&str>, surface: &str, diffs: &Differences, ranges: bool) {
    let (c, tree) = (corpus(), &corpus().snapshot);
    let cov = Coverage::default();
    let rep = Report {
        surface,
        diffs,
        cov: &cov,
    };
    if let Some(got) = step(&format!("{surface}: listing and reads"), || {
        readback::rest_snapshot(&env.rest, s, at, rep)
    }) {
        tree.compare(&got, surface, diffs);
    }
    let least = if ranges {
        step(&format!("{surface}: ranges"), || {
            readback::rest_ranges(&env.rest, s, at, c, tree, rep)
        });
        least_ranges(tree)
    } else {
        0
    };
    rep.require(tree.count(Kind::File), tree.file_bytes(), least);
}

fn export_rest(env: &Env, s: &str, at: Option<&str>, tree: &Snapshot, surface: &str, diffs: &Differences) {
    let cov = Coverage::default();
    let rep = Report {
        surface,
        diffs,
        cov: &cov,
    };
    match step(surface, || env.rest.export(s, at, false, Duration::from_secs(120))) {
        Ok(r) if r.status == 200 => {
            if let Some(got) = readback::archive_snapshot(&r.body, false, rep) {
                tree.compare(&got, surface, diffs);
            }
            rep.require(tree.count(Kind::File), tree.file_bytes(), 0);
        }
        Ok(r) => rep.add("(export)", format!("status {}: {}", r.status, r.text())),
        Err(e) => rep.add("(export)", e.to_string()),
    }
}

/// `git clone` over smart HTTP after a commit: the checkout holds what git can hold of the
/// corpus, under the names git trees use for the session's reserved names.
#[test]
fn git_clone_of_a_commit_returns_what_git_holds() {
    if !prereq::git("git_clone_of_a_commit_returns_what_git_holds") {
        return;
    }
    let (c, env) = (corpus(), env());
    let diffs = Differences::new();
    let s = session_with_corpus(&env, &diffs);
    if let Err(e) = env.rest.commit(&s, "the integrity corpus") {
        diffs.add("commit", "(commit)", e);
    }
    let url = env
        .server
        .url
        .replacen("http://", &format!("http://integrity:{}@", env.server.admin), 1);
    let dir = env.dir("clones");
    let clone = dir.join("clone");
    let cloned = step("git clone", || {
        git::run_in(
            &dir,
            Duration::from_secs(300),
            &["clone", "-q", &format!("{url}/git/{s}"), clone.to_str().unwrap()],
        )
    });
    match cloned {
        Ok(_) => {
            let mut got = Snapshot::from_dir(&clone, &diffs, "git clone").unwrap();
            got.entries
                .retain(|k, _| k.as_slice() != b".git" && !k.starts_with(b".git/"));
            let cov = Coverage::default();
            for e in got.entries.values().filter(|e| e.kind == Kind::File) {
                cov.file(e.size as usize);
            }
            let expected = normalise_checkout(&git_projection(&tree_spelling(&c.snapshot)));
            expected.compare(&normalise_checkout(&got), "git clone", &diffs);
            cov.require(
                expected.count(Kind::File),
                expected.file_bytes(),
                0,
                "git clone",
                &diffs,
            );
            if let Err(e) = git::run_in(
                &clone,
                Duration::from_secs(300),
                &["fsck", "--full", "--strict", "--no-progress"],
            ) {
                diffs.add("git clone", "(fsck)", e);
            }
        }
        Err(e) => diffs.add("git clone", "(clone)", e),
    }
    diffs.assert_none("git clone read path");
}

/// Files of `tree`, the order rotated per reader.
fn reader_order(files: &[PathBuf], reader: usize) -> impl Iterator<Item = &PathBuf> {
    let n = files.len();
    (0..n).map(move |k| &files[(k + reader * 7) % n])
}

/// `readers` threads each reading every file of `corpus` through `root` whole (with a buffer
/// size of its own); odd readers also read the boundary ranges with `pread`. Everything read is
/// compared with the corpus.
fn concurrent_readers(
    root: &Path,
    readers: usize,
    surface: &str,
    diffs: &Arc<Differences>,
    cov: &Arc<Coverage>,
) -> bool {
    let c: &'static Corpus = corpus();
    let files: Arc<Vec<PathBuf>> = Arc::new(
        c.snapshot
            .files()
            .into_iter()
            .map(|p| PathBuf::from(std::ffi::OsString::from(String::from_utf8(p).unwrap())))
            .collect(),
    );
    let (root, surface, d, cv) = (root.to_owned(), surface.to_owned(), diffs.clone(), cov.clone());
    thread_with_limit("mount-readers", Duration::from_secs(600), move || {
        std::thread::scope(|scope| {
            for r in 0..readers {
                let (files, root, surface, d, cv) = (&files, &root, &surface, &d, &cv);
                scope.spawn(move || {
                    let buf_size = [4096, 65536, (1 << 20) + 1, 131_072, 7919][r % 5];
                    let mut buf = vec![0u8; buf_size];
                    for rel in reader_order(files, r) {
                        let key = rel.to_str().unwrap().as_bytes();
                        let want = c.snapshot.get(key).unwrap();
                        let shown = format!("{} (reader {r})", show(key));
                        let mut f = match std::fs::File::open(root.join(rel)) {
                            Ok(f) => f,
                            Err(e) => {
                                d.add(surface, shown, format!("open: {e}"));
                                continue;
                            }
                        };
                        let mut h = blake3::Hasher::new();
                        let mut n = 0u64;
                        loop {
                            match f.read(&mut buf) {
                                Ok(0) => break,
                                Ok(k) => {
                                    h.update(&buf[..k]);
                                    n += k as u64;
                                }
                                Err(e) => {
                                    d.add(surface, shown.clone(), format!("read at {n}: {e}"));
                                    break;
                                }
                            }
                        }
                        cv.file(n as usize);
                        if n != want.size || Some(*h.finalize().as_bytes()) != want.digest {
                            d.add(
                                surface,
                                shown.clone(),
                                format!(
                                    "read {n} bytes (expected {}), content differs: {}",
                                    want.size,
                                    n == want.size
                                ),
                            );
                        }
                        if r % 2 == 1 {
                            for (s, e) in boundary_ranges(want.size, &[]) {
                                let mut got = vec![0u8; (e - s + 1) as usize];
                                cv.range();
                                match f.read_exact_at(&mut got, s) {
                                    Ok(()) if got == c.read_range(key, s, got.len()) => {}
                                    Ok(()) => d.add(surface, shown.clone(), format!("pread {s}..={e}: wrong bytes")),
                                    Err(err) => d.add(surface, shown.clone(), format!("pread {s}..={e}: {err}")),
                                }
                            }
                        }
                    }
                });
            }
        });
    })
    .is_some()
}

/// Mount `session` (with `opts`), read it as `surface` (a full tree walk, and with `readers`
/// concurrent readers first when given), compare with the corpus, run `extra` in the mount,
/// unmount. A mount that hangs is torn down.
fn mount_and_compare(
    env: &Env,
    session: &str,
    opts: &MountOptions,
    readers: Option<usize>,
    surface: &str,
    diffs: &Arc<Differences>,
    extra: &dyn Fn(&Path, &Differences),
) {
    let c = corpus();
    let dir = env.dir(&format!(
        "mnt-{}",
        surface.replace(|ch: char| !ch.is_ascii_alphanumeric(), "-")
    ));
    let m = match Mount::new(env, session, &dir, opts) {
        Ok(m) => m,
        Err(e) => {
            diffs.add(surface, "(mount)", e);
            return;
        }
    };
    let mut hung = false;
    if let Some(n) = readers {
        let cov = Arc::new(Coverage::default());
        if step(&format!("{surface}: {n} concurrent readers"), || {
            concurrent_readers(m.root(), n, surface, diffs, &cov)
        }) {
            cov.require(
                n * c.snapshot.count(Kind::File),
                n as u64 * c.snapshot.file_bytes(),
                (n / 2) as u64 * least_ranges(&c.snapshot),
                surface,
                diffs,
            );
        } else {
            diffs.add(
                surface,
                "(readers)",
                "the concurrent readers did not finish within 600 s (hung)",
            );
            hung = true;
        }
    }
    if !hung {
        let cov = Arc::new(Coverage::default());
        let got = step(&format!("{surface}: tree walk"), || {
            readback::dir_snapshot(m.root(), Duration::from_secs(300), surface, diffs, &cov)
        });
        match got {
            Some(got) => {
                c.snapshot.compare(&got, surface, diffs);
                cov.require(c.snapshot.count(Kind::File), c.snapshot.file_bytes(), 0, surface, diffs);
                extra(m.root(), diffs);
            }
            None => hung = true,
        }
    }
    if hung {
        eprintln!("{surface}: tearing the hung mount down\n{}", m.log());
        m.abort();
    } else if let Err(e) = m.unmount() {
        diffs.add(surface, "(unmount)", e);
    }
}

#[test]
fn mounts_read_what_went_in() {
    if !prereq::fuse_and_git("mounts_read_what_went_in") {
        return;
    }
    let env = env();
    let diffs = Arc::new(Differences::new());
    let s = session_with_corpus(&env, &diffs);
    let checkpoint = env.rest.checkpoint(&s);
    let commit = env.rest.commit(&s, "the integrity corpus");
    let fork = env.rest.fork(&s, None);
    let cache = env.dir("cache");
    let opts = MountOptions {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let none = |_: &Path, _: &Differences| {};
    mount_and_compare(&env, &s, &opts, Some(16), "cold mount, 16 readers", &diffs, &none);
    mount_and_compare(&env, &s, &opts, None, "second mount (warm disk cache)", &diffs, &none);
    match fork {
        Ok(f) => mount_and_compare(&env, &f, &opts, None, "fork's mount", &diffs, &none),
        Err(e) => diffs.add("fork's mount", "(fork)", e),
    }
    match checkpoint {
        Ok(n) => {
            let at = MountOptions {
                at: Some(format!("checkpoints/{n}")),
                ..opts.clone()
            };
            let git_log = |root: &Path, d: &Differences| {
                let repo = root.join(names::REPO);
                match git::run_in(&repo, Duration::from_secs(120), &["log", "--oneline"]) {
                    Ok(out) if out.lines().count() == 2 => {}
                    Ok(out) => d.add(
                        "mount --at checkpoint",
                        "repo (git log)",
                        format!("expected 2 commits:\n{out}"),
                    ),
                    Err(e) => d.add("mount --at checkpoint", "repo (git log)", e),
                }
            };
            mount_and_compare(&env, &s, &at, None, "mount --at checkpoint", &diffs, &git_log);
        }
        Err(e) => diffs.add("mount --at checkpoint", "(checkpoint)", e),
    }
    match commit {
        Ok(c) => {
            let at = MountOptions {
                at: c["id"].as_str().map(str::to_owned),
                ..opts.clone()
            };
            mount_and_compare(&env, &s, &at, None, "mount --at commit", &diffs, &none);
        }
        Err(e) => diffs.add("mount --at commit", "(commit)", e),
    }
    if !diffs.is_empty() {
        eprintln!("{}\nserver log:\n{}", env.server.health(), env.server.log_tail(30));
    }
    diffs.assert_none("mount read paths");
}
