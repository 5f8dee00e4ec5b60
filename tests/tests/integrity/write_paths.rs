//! Every write path, each read back through the server's own read paths (REST listing and
//! reads, a per-directory gRPC walk with `Stat` and `ReadFile`, a raw tar export) and compared
//! entry by entry with what went in: names as bytes, kinds, modes, sizes, blake3 of the bytes,
//! symlink targets. A write path that cannot hold something (git: empty directories, modes other
//! than 644/755, nested `.git`) is compared with the corpus projected to what it can hold.

use std::time::Duration;

use aether_tests::corpus::git_projection;
use aether_tests::env::Env;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::readback::{self, Coverage, Report};
use aether_tests::report::Differences;
use aether_tests::snapshot::{Kind, Snapshot};
use aether_tests::{prereq, process, upload};

use crate::{corpus, env, step};

/// Read `session` back through gRPC (a walk one directory at a time), REST and the tar export
/// (both whole-tree walks, which a damaged session can make hang: they come last), comparing
/// each with `expected`; every surface must have read every file whole.
pub fn read_back(env: &Env, session: &str, expected: &Snapshot, label: &str, diffs: &Differences) {
    let files = expected.count(Kind::File);
    let bytes = expected.file_bytes();

    let cov = Coverage::default();
    let rep = Report {
        surface: &format!("{label} | gRPC"),
        diffs,
        cov: &cov,
    };
    if let Some(got) = step(&format!("{label}: gRPC read back"), || {
        readback::grpc_snapshot(&env.grpc, session, None, rep)
    }) {
        expected.compare(&got, rep.surface, diffs);
        rep.require(files, bytes, 0);
    }

    let cov = Coverage::default();
    let rep = Report {
        surface: &format!("{label} | REST"),
        diffs,
        cov: &cov,
    };
    if let Some(got) = step(&format!("{label}: REST read back"), || {
        readback::rest_snapshot(&env.rest, session, None, rep)
    }) {
        expected.compare(&got, rep.surface, diffs);
        rep.require(files, bytes, 0);
    }

    let cov = Coverage::default();
    let rep = Report {
        surface: &format!("{label} | tar export"),
        diffs,
        cov: &cov,
    };
    match step(&format!("{label}: export"), || {
        env.rest.export(session, None, false, Duration::from_secs(120))
    }) {
        Ok(r) if r.status == 200 => {
            if let Some(got) = readback::archive_snapshot(&r.body, false, rep) {
                expected.compare(&got, rep.surface, diffs);
                rep.require(files, bytes, 0);
            }
        }
        Ok(r) => rep.add("(export)", format!("status {}: {}", r.status, r.text())),
        Err(e) => rep.add("(export)", e.to_string()),
    }
}

fn finish(env: &Env, diffs: &Differences, what: &str) {
    if !diffs.is_empty() {
        eprintln!("{}\nserver log:\n{}", env.server.health(), env.server.log_tail(30));
    }
    diffs.assert_none(what);
}

#[test]
fn rest_write_path() {
    if !prereq::git("rest_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let s = env.new_session();
    let diffs = Differences::new();
    step("REST upload", || {
        upload::rest(&env.rest, &s, c, &c.snapshot, "REST write", &diffs)
    });
    read_back(&env, &s, &c.snapshot, "written over REST", &diffs);
    finish(&env, &diffs, "REST write path");
}

#[test]
fn grpc_write_path() {
    if !prereq::git("grpc_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let s = env.new_session();
    let diffs = Differences::new();
    step("gRPC upload", || {
        upload::grpc(&env.grpc, &s, c, &c.snapshot, "gRPC write", &diffs, false)
    });
    read_back(&env, &s, &c.snapshot, "written over gRPC", &diffs);
    finish(&env, &diffs, "gRPC write path");
}

/// Large files uploaded over gRPC in two parts, the second a resumed upload at an offset (as
/// `aether fs put --resume` sends it), read back on every surface.
#[test]
fn grpc_resumed_write_path() {
    if !prereq::git("grpc_resumed_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let s = env.new_session();
    let diffs = Differences::new();
    step("gRPC upload, large files resumed", || {
        upload::grpc(&env.grpc, &s, c, &c.snapshot, "gRPC resumed write", &diffs, true)
    });
    read_back(&env, &s, &c.snapshot, "written over gRPC, resumed", &diffs);
    finish(&env, &diffs, "gRPC resumed write path");
}

#[test]
fn from_dir_write_path() {
    if !prereq::git("from_dir_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let s = step("aether session create --from-dir", || {
        env.create_session(&["--from-dir", c.root.to_str().unwrap()])
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let diffs = Differences::new();
    read_back(&env, &s, &c.snapshot, "--from-dir", &diffs);
    finish(&env, &diffs, "--from-dir write path");
}

/// GNU tar, `--format=gnu -S` (old GNU sparse entries), uploaded to `POST /v1/sessions/import`.
#[test]
fn gnu_sparse_tar_write_path() {
    if !prereq::git("gnu_sparse_tar_write_path") || !prereq::gnu_tar("gnu_sparse_tar_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let archive = process::ok_bytes(
        std::process::Command::new("tar")
            .args(["--format=gnu", "-S", "-C"])
            .arg(&c.root)
            .args(["-cf", "-", "."]),
    );
    let diffs = Differences::new();
    match step("tar import (REST)", || env.rest.import_tar(archive)) {
        Ok(s) => read_back(&env, &s, &c.snapshot, "GNU sparse tar (REST import)", &diffs),
        Err(e) => diffs.add("GNU sparse tar (REST import)", "(import)", e),
    }
    finish(&env, &diffs, "tar write path");
}

/// GNU tar, `--format=pax -S -z` (PAX sparse entries, gzip), uploaded with `aether session
/// create --from-tar`.
#[test]
fn pax_sparse_tar_gz_write_path() {
    if !prereq::git("pax_sparse_tar_gz_write_path") || !prereq::gnu_tar("pax_sparse_tar_gz_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let file = env.home().join("corpus.tar.gz");
    process::ok(
        std::process::Command::new("tar")
            .args(["--format=pax", "-S", "-z", "-C"])
            .arg(&c.root)
            .arg("-cf")
            .arg(&file)
            .arg("."),
    );
    let diffs = Differences::new();
    match step("aether session create --from-tar (tar.gz)", || {
        env.create_session(&["--from-tar", file.to_str().unwrap()])
    }) {
        Ok(s) => read_back(&env, &s, &c.snapshot, "PAX sparse tar.gz (--from-tar)", &diffs),
        Err(e) => diffs.add("PAX sparse tar.gz (--from-tar)", "(import)", e),
    }
    finish(&env, &diffs, "tar.gz write path");
}

/// `aether session create --from-git` of a repository made from the corpus: compared with what
/// git holds of it.
#[test]
fn git_import_write_path() {
    if !prereq::git("git_import_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let repo = env.dir("source-repo");
    step("make a repository of the corpus", || c.git_repository(&repo));
    let diffs = Differences::new();
    match step("aether session create --from-git", || {
        env.create_session(&["--from-git", repo.to_str().unwrap()])
    }) {
        Ok(s) => read_back(&env, &s, &git_projection(&c.snapshot), "--from-git", &diffs),
        Err(e) => diffs.add("--from-git", "(import)", e),
    }
    finish(&env, &diffs, "git import write path");
}

/// `cp -a` of the corpus into `aether mount`, then `aether unmount`.
#[test]
fn mount_write_path() {
    if !prereq::git("mount_write_path") || !prereq::fuse("mount_write_path") {
        return;
    }
    let (c, env) = (corpus(), env());
    let s = env.new_session();
    let m = Mount::new(&env, &s, &env.dir("m"), &MountOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let diffs = Differences::new();
    let copied = step("cp -a into the mount", || {
        process::run(
            process::timed(Duration::from_secs(600), "cp")
                .arg("-a")
                .arg(format!("{}/.", c.root.display()))
                .arg(m.root()),
        )
    });
    if let Err(e) = copied {
        diffs.add("mount write", "(cp -a)", format!("{e}\nmount log:\n{}", m.log()));
    }
    if let Err(e) = step("unmount", || m.unmount()) {
        diffs.add("mount write", "(unmount)", e);
    }
    read_back(&env, &s, &c.snapshot, "written through a mount", &diffs);
    finish(&env, &diffs, "mount write path");
}
