//! The differential integrity suite (issue 32): an adversarial corpus put in through every write
//! path and read back through every read path, fault injection, a concurrent-writer checker and a
//! git checkout kept clean across mounts, all against the real binaries (`aetherd` in its own
//! process, the `aether` CLI, kernel FUSE mounts), real `git` and GNU `tar`.
//!
//! Every test starts its own server; a failure lists every difference with the surface that
//! showed it. Knobs: `AETHER_INTEGRITY_SEED` (corpus seed), `AETHER_INTEGRITY_SECS` (how long the
//! concurrent checker runs; a soak sets it high), `AETHER_INTEGRITY_CHECKOUT_FILES` /
//! `AETHER_INTEGRITY_CHECKOUT` (scale of the git checkout test). README: "Integrity suite".

#![allow(clippy::unwrap_used)]

mod concurrent;
mod corpus;
mod faults;
mod git_checkout;
mod handoff;
mod read_paths;
mod write_paths;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aether_tests::bins::Bins;
use aether_tests::corpus::Corpus;
use aether_tests::env::Env;

pub fn bins() -> Bins {
    Bins {
        aether: env!("CARGO_BIN_EXE_aether-under-test").into(),
        aetherd: env!("CARGO_BIN_EXE_aetherd-under-test").into(),
    }
}

/// This run's scratch directory, under cargo's target tmp dir. Directories of earlier runs whose
/// process is gone (and that hold no mount) are removed first.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("integrity");
        std::fs::create_dir_all(&base).unwrap();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("run-") else { continue };
            let path = e.path();
            let alive = Path::new("/proc").join(pid).exists();
            let holds_mount = mounts
                .lines()
                .any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m).starts_with(&path)));
            if !alive && !holds_mount {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The corpus of this run (generated once per process; needs git).
pub fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let start = std::time::Instant::now();
        let c = Corpus::generate(&scratch().join("corpus"), aether_tests::corpus::seed());
        eprintln!(
            "[integrity] corpus (seed {}): {} in {:.1?}",
            c.seed,
            c.snapshot.summary(),
            start.elapsed()
        );
        c
    })
}

/// A fresh server with its clients.
pub fn env() -> Env {
    Env::start(&bins(), scratch())
}

/// Time a step and print it (`--nocapture` shows it), so slow steps are visible in CI logs.
pub fn step<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let r = f();
    eprintln!("[integrity] {what}: {:.2?}", start.elapsed());
    r
}
