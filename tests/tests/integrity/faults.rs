//! Fault injection: a mount's disk cache damaged on disk (bytes flipped, two block files swapped,
//! one truncated) must never reach a reader of a later mount, nor be uploaded by a write through
//! it; `aether unmount` followed at once by a read on REST must see every file written through
//! the mount; a `chmod` of the mount root must leave every listing, export and the server's
//! memory as they were.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aether_tests::corpus::Corpus;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::readback::{self, Coverage, Report};
use aether_tests::report::Differences;
use aether_tests::snapshot::{Kind, Snapshot, show};
use aether_tests::{prereq, process, seeded, upload};

use crate::{corpus, env, step};

/// The part of the corpus under `prefixes` (the directories on the way included).
fn part(c: &Corpus, prefixes: &[&str]) -> Snapshot {
    c.snapshot.map(|p, e| {
        prefixes
            .iter()
            .any(|pre| p == pre.as_bytes() || p.starts_with(format!("{pre}/").as_bytes()))
            .then(|| (p.to_vec(), e.clone()))
    })
}

/// Every regular file of at least 4 KiB under `dir` except the mounts' pid files, by path.
fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            if m.is_dir() && e.file_name() != "mounts" {
                stack.push(p);
            } else if m.is_file() && m.len() >= 4096 {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flip(path: &Path, at: u64, n: usize) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    let len = bytes.len();
    let at = (at as usize).min(len.saturating_sub(n));
    for b in &mut bytes[at..at + n.min(len)] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes)
}

#[test]
fn damaged_cache_files_never_reach_a_reader() {
    if !prereq::fuse_and_git("damaged_cache_files_never_reach_a_reader") {
        return;
    }
    let (c, env) = (corpus(), env());
    let diffs = Arc::new(Differences::new());
    let tree = part(c, &["big", "sizes", "sparse"]);
    let s = env.new_session();
    upload::rest(&env.rest, &s, c, &tree, "setup: REST write", &diffs);
    let cache = env.dir("cache");
    let opts = MountOptions {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };

    // A first mount reads everything, filling the disk cache.
    let read_all = |surface: &str, diffs: &Arc<Differences>| -> bool {
        let m = match Mount::new(&env, &s, &env.dir("m"), &opts) {
            Ok(m) => m,
            Err(e) => {
                diffs.add(surface, "(mount)", e);
                return false;
            }
        };
        let cov = Arc::new(Coverage::default());
        match readback::dir_snapshot(m.root(), Duration::from_secs(300), surface, diffs, &cov) {
            Some(got) => {
                tree.compare(&got, surface, diffs);
                cov.require(tree.count(Kind::File), tree.file_bytes(), 0, surface, diffs);
            }
            None => {
                m.abort();
                return false;
            }
        }
        if let Err(e) = m.unmount() {
            diffs.add(surface, "(unmount)", e);
        }
        true
    };
    step("first mount reads everything", || read_all("first mount", &diffs));

    // Damage the cache on disk: flip bytes in two files, swap two, truncate one.
    let files = cache_files(&cache);
    eprintln!("[integrity] cache files after the first mount: {}", files.len());
    if files.len() < 5 {
        diffs.add(
            "cache",
            show(cache.to_str().unwrap().as_bytes()),
            format!(
                "{} cache files of 4 KiB or more after reading {} bytes: nothing to damage",
                files.len(),
                tree.file_bytes()
            ),
        );
        diffs.assert_none("damaged cache");
        return;
    }
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut damage = Vec::new();
    flip(&files[0], len(&files[0]) / 2, 64).unwrap();
    damage.push(format!("flipped 64 bytes in the middle of {}", files[0].display()));
    flip(&files[1], 0, 1).unwrap();
    damage.push(format!("flipped the first byte of {}", files[1].display()));
    let (a, b) = (std::fs::read(&files[2]).unwrap(), std::fs::read(&files[3]).unwrap());
    std::fs::write(&files[2], &b).unwrap();
    std::fs::write(&files[3], &a).unwrap();
    damage.push(format!("swapped {} and {}", files[2].display(), files[3].display()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[4])
        .and_then(|f| f.set_len(5000))
        .unwrap();
    damage.push(format!("truncated {} to 5000 bytes", files[4].display()));
    for f in files.iter().skip(5).step_by(3) {
        flip(f, len(f) - 1, 1).unwrap();
        damage.push(format!("flipped the last byte of {}", f.display()));
    }
    eprintln!("[integrity] damage:\n  {}", damage.join("\n  "));

    // A later mount must read the right bytes anyway.
    step("second mount reads through the damaged cache", || {
        read_all("mount over a damaged cache", &diffs)
    });

    // A write through a mount over the damaged cache must not upload damaged bytes: append a
    // line to every large file, fsync, unmount, read the files back over REST.
    let m = Mount::new(&env, &s, &env.dir("m"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let big: Vec<Vec<u8>> = tree
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size >= 1 << 20)
        .map(|(p, _)| p.clone())
        .collect();
    let surface = "append through a mount over a damaged cache";
    for p in &big {
        let path = m.root().join(std::str::from_utf8(p).unwrap());
        let appended = std::fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| {
            f.write_all(b"appended\n")?;
            f.sync_all()
        });
        if let Err(e) = appended {
            diffs.add(surface, show(p), format!("append and fsync: {e}"));
        }
    }
    if let Err(e) = m.unmount() {
        diffs.add(surface, "(unmount)", e);
    }
    for p in &big {
        let mut want = c.read(p);
        want.extend_from_slice(b"appended\n");
        match env.rest.get_file(&s, p, None, None, Duration::from_secs(60)) {
            Ok(r) if r.status == 200 && r.body == want => {}
            Ok(r) => diffs.add(
                surface,
                show(p),
                format!(
                    "the server holds {} bytes (expected {}){}",
                    r.body.len(),
                    want.len(),
                    if r.body.len() == want.len() {
                        ", other bytes"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => diffs.add(surface, show(p), e.to_string()),
        }
    }
    assert!(big.len() >= 5, "only {} large files to append to", big.len());
    if !diffs.is_empty() {
        eprintln!("damage done:\n  {}", damage.join("\n  "));
    }
    diffs.assert_none("damaged cache");
}

/// `cp -r` of 20 files of a few MB into a mount, `aether unmount DIR` (as `aether mount` prints
/// it), then at once the listing and every file over REST. Rounds alternate a mount with the
/// default cache directory and one with `--cache-dir`.
#[test]
fn unmount_is_a_barrier_for_every_write() {
    if !prereq::fuse("unmount_is_a_barrier_for_every_write") {
        return;
    }
    let env = env();
    let s = env.new_session();
    let diffs = Differences::new();
    const FILES: usize = 20;
    const SIZE: usize = 3 << 20;
    for round in 0..4 {
        let src = env.dir(&format!("src-{round}"));
        let mut expected = Vec::new();
        for i in 0..FILES {
            let name = format!("file-{i:02}.bin");
            let bytes = seeded::bytes(round as u64, &name, SIZE - i * 4099);
            std::fs::write(src.join(&name), &bytes).unwrap();
            expected.push((format!("round-{round}/{name}"), bytes));
        }
        let opts = MountOptions {
            cache_dir: (round % 2 == 1).then(|| env.dir(&format!("cache-{round}"))),
            ..Default::default()
        };
        let m = Mount::new(&env, &s, &env.dir("m"), &opts).unwrap_or_else(|e| panic!("{e}"));
        let surface = format!(
            "round {round} ({}): REST right after aether unmount",
            if opts.cache_dir.is_some() {
                "mounted with --cache-dir"
            } else {
                "default cache"
            }
        );
        let copied = step(&format!("round {round}: cp -r of {FILES} files"), || {
            process::run(
                process::timed(Duration::from_secs(300), "cp")
                    .arg("-r")
                    .arg(&src)
                    .arg(m.root().join(format!("round-{round}"))),
            )
        });
        if let Err(e) = copied {
            diffs.add(&surface, "(cp -r)", e);
        }
        match step(&format!("round {round}: aether unmount"), || m.unmount_as_printed()) {
            Ok(took) => eprintln!("[integrity] round {round}: unmount took {took:?}"),
            Err(e) => diffs.add(&surface, "(unmount)", e),
        }
        // At once: the listing and every file.
        match env
            .rest
            .tree(&s, &format!("round-{round}"), false, None, Duration::from_secs(30))
        {
            Ok(entries) if entries.len() == FILES => {}
            Ok(entries) => diffs.add(
                &surface,
                format!("round-{round}"),
                format!("listed {} of {FILES} files", entries.len()),
            ),
            Err(e) => diffs.add(&surface, format!("round-{round}"), e),
        }
        for (path, bytes) in &expected {
            match env
                .rest
                .get_file(&s, path.as_bytes(), None, None, Duration::from_secs(60))
            {
                Ok(r) if r.status == 200 && &r.body == bytes => {}
                Ok(r) if r.status == 200 => diffs.add(
                    &surface,
                    path.clone(),
                    format!("{} bytes, expected {} (other content)", r.body.len(), bytes.len()),
                ),
                Ok(r) => diffs.add(&surface, path.clone(), format!("status {}: {}", r.status, r.text())),
                Err(e) => diffs.add(&surface, path.clone(), e.to_string()),
            }
        }
    }
    diffs.assert_none("unmount barrier");
}

#[test]
fn chmod_of_the_mount_root_keeps_listings_whole_and_bounded() {
    if !prereq::fuse_and_git("chmod_of_the_mount_root_keeps_listings_whole_and_bounded") {
        return;
    }
    let (c, env) = (corpus(), env());
    let tree = part(c, &["links", "modes", "names", "deep"]);
    let s = env.new_session();
    let diffs = Differences::new();
    upload::rest(&env.rest, &s, c, &tree, "setup: REST write", &diffs);
    let m = Mount::new(&env, &s, &env.dir("m"), &MountOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let surface = "chmod 700 of the mount root";
    match std::fs::set_permissions(m.root(), std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => {
            let mode = std::fs::metadata(m.root()).map(|md| md.permissions().mode() & 0o7777);
            if !matches!(mode, Ok(0o700)) {
                diffs.add(
                    surface,
                    "(mount root)",
                    format!(
                        "chmod returned 0 but the root's mode is {mode:?} (octal {:o})",
                        mode.as_ref().copied().unwrap_or(0)
                    ),
                );
            }
        }
        Err(e) => eprintln!("[integrity] chmod of the mount root failed ({e}): allowed, if with a clear errno"),
    }
    if let Err(e) = m.unmount() {
        diffs.add(surface, "(unmount)", e);
    }

    let baseline = env.server.rss().unwrap_or(0);
    let limit = Duration::from_secs(20);
    let files = tree.count(Kind::File);
    let bytes = tree.file_bytes();
    match env.rest.tree(&s, "", false, None, limit) {
        Ok(entries) => {
            for e in entries
                .iter()
                .filter(|e| e["path"].as_str().is_none_or(|p| p.is_empty() || p.contains('/')))
            {
                diffs.add(
                    "REST root listing",
                    "(root)",
                    format!("an entry that is not a child of the root: {e}"),
                );
            }
        }
        Err(e) => diffs.add("REST root listing", "(root)", e),
    }
    // Promptly: within `limit`, then the whole snapshot (every file read) to compare.
    let cov = Coverage::default();
    let rep = Report {
        surface: "REST recursive listing after the chmod",
        diffs: &diffs,
        cov: &cov,
    };
    match step("REST recursive listing", || env.rest.tree(&s, "", true, None, limit)) {
        Ok(_) => {
            if let Some(got) = readback::rest_snapshot(&env.rest, &s, None, rep) {
                tree.compare(&got, rep.surface, &diffs);
                rep.require(files, bytes, 0);
            }
        }
        Err(e) => rep.add("(listing)", e),
    }
    let surface = "gRPC recursive ListTree after the chmod";
    match step("gRPC recursive ListTree", || {
        env.grpc.list_tree(&s, "", true, None, limit)
    }) {
        Ok(l) => {
            let listed: Vec<&str> = l.entries.iter().map(|e| e.path.as_str()).collect();
            if listed.len() != tree.len() || listed.iter().any(|p| p.is_empty()) {
                diffs.add(
                    surface,
                    "(listing)",
                    format!(
                        "{} entries (expected {}), empty names: {}",
                        listed.len(),
                        tree.len(),
                        listed.iter().filter(|p| p.is_empty()).count()
                    ),
                );
            }
        }
        Err(e) => diffs.add(surface, "(listing)", e.to_string()),
    }
    let cov = Coverage::default();
    let rep = Report {
        surface: "tar export after the chmod",
        diffs: &diffs,
        cov: &cov,
    };
    match step("export", || env.rest.export(&s, None, false, limit)) {
        Ok(r) if r.status == 200 => {
            if let Some(got) = readback::archive_snapshot(&r.body, false, rep) {
                tree.compare(&got, rep.surface, &diffs);
                rep.require(files, bytes, 0);
            }
        }
        Ok(r) => rep.add("(export)", format!("status {}: {}", r.status, r.text())),
        Err(e) => rep.add("(export)", e.to_string()),
    }
    let peak = env.server.peak_rss();
    if peak > baseline + (512 << 20) || !env.server.is_running() {
        diffs.add(
            "server memory",
            "(server)",
            format!(
                "resident memory went from {} MiB to {} MiB ({})",
                baseline >> 20,
                peak >> 20,
                env.server.health()
            ),
        );
    }
    diffs.assert_none("chmod of the mount root");
}
