//! Exact handoff (issue 24): once a system call that changed a mount returned (the `close`
//! after writing a file, a `rename`, an `unlink`), every surface shows the change at once: a
//! REST read, a gRPC read, `git fetch` of `refs/aether/live`, and a checkpoint taken over the
//! API. Each kind of change is made `AETHER_HANDOFF_ROUNDS` times (200 by default) and every
//! surface is read right after each; one stale answer is a miss, and the test wants none. A
//! tenth as many rounds write a file that stays open and run `sync` instead of closing it: the
//! kernel then hands the written pages to the mount, and they count as handed over too.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use aether_tests::git;
use aether_tests::grpc::GrpcError;
use aether_tests::mount::{Mount, MountOptions};
use aether_tests::prereq;

use crate::env;

const LIMIT: Duration = Duration::from_secs(30);

fn rounds() -> usize {
    std::env::var("AETHER_HANDOFF_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// What the session must hold after a change: each path's bytes, or `None` for no file.
type Expected = Vec<(String, Option<Vec<u8>>)>;

#[test]
fn what_a_mount_closed_is_what_every_surface_sees_at_once() {
    if !prereq::fuse_and_git("what_a_mount_closed_is_what_every_surface_sees_at_once") {
        return;
    }
    let env = env();
    let s = env.rest.create_session().unwrap();
    let mnt = env.dir("handoff-mnt");
    let m = Mount::new(&env, &s, &mnt, &MountOptions::default()).unwrap();
    let fetch = env.dir("handoff-fetch");
    git::ok_in(&fetch, &["init", "-q"]);
    let url = env
        .server
        .url
        .replacen("http://", &format!("http://handoff:{}@", env.server.admin), 1);
    let remote = format!("{url}/git/{s}");

    let n = rounds();
    // What the rounds start from, on the server before they begin.
    for d in ["new", "ren", "del"] {
        std::fs::create_dir(m.path(d)).unwrap();
    }
    std::fs::write(m.path("over"), b"first").unwrap();
    std::fs::write(m.path("log"), b"").unwrap();
    std::fs::write(m.path("ren/x"), b"moving").unwrap();
    for i in 0..n {
        std::fs::write(m.path(&format!("del/{i}")), format!("doomed {i}")).unwrap();
    }
    std::fs::File::open(&mnt).unwrap().sync_all().unwrap();

    let mut misses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut log = Vec::new();
    let mut checked = 0usize;
    for kind in ["new", "overwrite", "append", "rename", "delete", "sync"] {
        let rounds = if kind == "sync" { n.div_ceil(10) } else { n };
        let mut open = None;
        for i in 0..rounds {
            let expected: Expected = match kind {
                "new" => {
                    let p = format!("new/{i}");
                    let bytes = format!("new file {i}\n").into_bytes();
                    std::fs::write(m.path(&p), &bytes).unwrap();
                    vec![(p, Some(bytes))]
                }
                "overwrite" => {
                    // Lengths change and repeat, so a stale size cannot pass for the new one.
                    let bytes = format!("overwritten {i} {}", "x".repeat(i % 7)).into_bytes();
                    std::fs::write(m.path("over"), &bytes).unwrap();
                    vec![("over".to_owned(), Some(bytes))]
                }
                "append" => {
                    let line = format!("line {i}\n");
                    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
                    f.write_all(line.as_bytes()).unwrap();
                    drop(f);
                    log.extend_from_slice(line.as_bytes());
                    vec![("log".to_owned(), Some(log.clone()))]
                }
                "rename" => {
                    let (from, to) = if i % 2 == 0 {
                        ("ren/x", "ren/y")
                    } else {
                        ("ren/y", "ren/x")
                    };
                    std::fs::rename(m.path(from), m.path(to)).unwrap();
                    vec![(to.to_owned(), Some(b"moving".to_vec())), (from.to_owned(), None)]
                }
                "delete" => {
                    let p = format!("del/{i}");
                    std::fs::remove_file(m.path(&p)).unwrap();
                    vec![(p, None)]
                }
                _ => {
                    let p = format!("synced-{i}");
                    let bytes = format!("synced while open {i}\n").into_bytes();
                    let mut f = std::fs::File::create(m.path(&p)).unwrap();
                    f.write_all(&bytes).unwrap();
                    let synced = std::process::Command::new("sync").status().unwrap();
                    assert!(synced.success());
                    // Closed only after the surfaces were read.
                    open = Some(f);
                    vec![(p, Some(bytes))]
                }
            };
            checked += 1;
            for (surface, problem) in check_all(&env, &s, &fetch, &remote, &expected) {
                misses
                    .entry(surface)
                    .or_default()
                    .push(format!("{kind} round {i}: {problem}"));
            }
            drop(open.take());
        }
    }
    let total: usize = misses.values().map(Vec::len).sum();
    let report: Vec<String> = misses
        .iter()
        .map(|(surface, list)| {
            let first: Vec<&String> = list.iter().take(5).collect();
            format!("{surface}: {} misses, first {first:?}", list.len())
        })
        .collect();
    assert_eq!(
        total,
        0,
        "{checked} changes, each read at once on every surface:\n{}\nmount log:\n{}",
        report.join("\n"),
        m.log()
    );
    m.unmount().unwrap();
}

/// Every surface read right away: (surface, what was wrong) for each stale answer.
fn check_all(
    env: &aether_tests::env::Env,
    s: &str,
    fetch: &std::path::Path,
    remote: &str,
    expected: &Expected,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (path, want) in expected {
        if let Some(p) = differs(rest_read(env, s, path, None), want) {
            out.push(("REST", format!("{path}: {p}")));
        }
        let grpc = match env.grpc.read_file(s, path, 0, None, None, LIMIT) {
            Ok(r) => Ok(Some(r.data)),
            Err(GrpcError::Status {
                code: tonic::Code::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        if let Some(p) = differs(grpc, want) {
            out.push(("gRPC", format!("{path}: {p}")));
        }
    }
    match env.rest.checkpoint(s) {
        Ok(number) => {
            let at = format!("checkpoints/{number}");
            for (path, want) in expected {
                if let Some(p) = differs(rest_read(env, s, path, Some(&at)), want) {
                    out.push(("checkpoint", format!("{path} at {at}: {p}")));
                }
            }
        }
        Err(e) => out.push(("checkpoint", e)),
    }
    match git::run_in(fetch, LIMIT, &["fetch", "-q", remote, "refs/aether/live"]) {
        Ok(_) => {
            for (path, want) in expected {
                let got = git::run_in(fetch, LIMIT, &["cat-file", "blob", &format!("FETCH_HEAD:{path}")])
                    .ok()
                    .map(String::into_bytes);
                if let Some(p) = differs(Ok(got), want) {
                    out.push(("git fetch", format!("{path}: {p}")));
                }
            }
        }
        Err(e) => out.push(("git fetch", e)),
    }
    out
}

fn rest_read(env: &aether_tests::env::Env, s: &str, path: &str, at: Option<&str>) -> Result<Option<Vec<u8>>, String> {
    match env.rest.get_file(s, path.as_bytes(), None, at, LIMIT) {
        Ok(r) if r.status == 200 => Ok(Some(r.body)),
        Ok(r) if r.status == 404 => Ok(None),
        Ok(r) => Err(format!("status {}: {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// What is wrong with `got` when `want` was due, if anything.
fn differs(got: Result<Option<Vec<u8>>, String>, want: &Option<Vec<u8>>) -> Option<String> {
    match (got, want) {
        (Err(e), _) => Some(e),
        (Ok(None), None) => None,
        (Ok(Some(g)), Some(w)) if &g == w => None,
        (Ok(None), Some(_)) => Some("missing".into()),
        (Ok(Some(g)), None) => Some(format!("still there ({} bytes)", g.len())),
        (Ok(Some(g)), Some(w)) => Some(format!(
            "{} bytes {:?}, wanted {} bytes {:?}",
            g.len(),
            String::from_utf8_lossy(&g[..g.len().min(40)]),
            w.len(),
            String::from_utf8_lossy(&w[..w.len().min(40)])
        )),
    }
}
