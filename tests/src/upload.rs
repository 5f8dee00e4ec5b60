//! Write paths that send a local tree entry by entry: REST (`PUT`, `mkdir`, `symlink`, `chmod`)
//! and gRPC (`WriteFile` streams for large files, `ApplyBatch` for the rest). The archive, git,
//! `--from-dir` and mount write paths use the real tools and live with their tests.

use aether_proto::v1 as pb;
use pb::batch_change::Op;

use crate::corpus::Corpus;
use crate::report::Differences;
use crate::snapshot::{Kind, Snapshot, show};

/// Files at least this large go through `WriteFile`; smaller ones in batches.
const STREAM_AT: u64 = 256 * 1024;
/// Inline bytes per batch.
const BATCH_BYTES: usize = 4 << 20;

fn utf8<'p>(path: &'p [u8], surface: &str, diffs: &Differences) -> Option<&'p str> {
    let s = std::str::from_utf8(path).ok();
    if s.is_none() {
        diffs.add(surface, show(path), "not UTF-8: this surface cannot name it");
    }
    s
}

/// Upload `tree` (files read from `corpus`) to `session` over REST. Directories are made first
/// and get their modes last; a file of mode 0755 is created with `?mode=`, any other mode but
/// 0644 is set with `chmod` afterwards. Refusals are recorded under `surface`.
pub fn rest(
    rest: &crate::rest::Rest,
    session: &str,
    corpus: &Corpus,
    tree: &Snapshot,
    surface: &str,
    diffs: &Differences,
) {
    for (path, e) in &tree.entries {
        let Some(p) = utf8(path, surface, diffs) else { continue };
        let result = match e.kind {
            Kind::Dir => rest.mkdir(session, p, true).map(|_| ()),
            Kind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                match std::str::from_utf8(target) {
                    Ok(t) => rest.symlink(session, p, t).map(|_| ()),
                    Err(_) => Err("target is not UTF-8".into()),
                }
            }
            Kind::File => {
                let mode = (e.mode == 0o755).then_some(0o755);
                match rest.put_file(session, path, corpus.read(path), mode) {
                    Ok(r) if r.status == 200 => Ok(()),
                    Ok(r) => Err(format!("PUT: status {}: {}", r.status, r.text())),
                    Err(err) => Err(format!("PUT: {err}")),
                }
            }
        };
        if let Err(err) = result {
            diffs.add(surface, show(path), format!("write refused: {err}"));
        }
    }
    for (path, e) in tree.entries.iter().rev() {
        let default = if e.kind == Kind::Dir { 0o755 } else { 0o644 };
        if e.kind == Kind::Symlink || e.mode == default || (e.kind == Kind::File && e.mode == 0o755) {
            continue;
        }
        let Some(p) = utf8(path, surface, diffs) else { continue };
        if let Err(err) = rest.chmod(session, p, e.mode) {
            diffs.add(surface, show(path), format!("chmod refused: {err}"));
        }
    }
}

fn apply(
    grpc: &crate::grpc::Grpc,
    session: &str,
    changes: Vec<pb::BatchChange>,
    paths: Vec<Vec<u8>>,
    surface: &str,
    diffs: &Differences,
) {
    if changes.is_empty() {
        return;
    }
    let n = changes.len();
    match grpc.apply_batch(session, changes) {
        Ok(r) if r.applied as usize == n && r.error.is_none() => {}
        Ok(r) => {
            let at = r.applied as usize;
            diffs.add(
                surface,
                paths.get(at).map(|p| show(p)).unwrap_or_default(),
                format!(
                    "batch stopped after {at} of {n} changes: {:?}",
                    r.error.map(|e| format!("{} {}", e.aether_code, e.message))
                ),
            );
        }
        Err(e) => diffs.add(surface, format!("batch of {n} changes"), format!("refused: {e}")),
    }
}

/// Upload `tree` over gRPC: directories and symlinks in one batch, small files in batches of
/// puts with their modes, large files as `WriteFile` streams, then directory modes in a batch.
pub fn grpc(
    grpc: &crate::grpc::Grpc,
    session: &str,
    corpus: &Corpus,
    tree: &Snapshot,
    surface: &str,
    diffs: &Differences,
    resume: bool,
) {
    let mut changes = Vec::new();
    let mut paths = Vec::new();
    for (path, e) in &tree.entries {
        let Some(p) = utf8(path, surface, diffs) else { continue };
        let op = match e.kind {
            Kind::Dir => Op::Mkdir(pb::BatchMkdir {
                path: p.to_owned(),
                parents: true,
            }),
            Kind::Symlink => Op::Symlink(pb::BatchSymlink {
                path: p.to_owned(),
                target: String::from_utf8_lossy(e.target.as_deref().unwrap_or_default()).into_owned(),
            }),
            Kind::File => continue,
        };
        changes.push(pb::BatchChange { op: Some(op) });
        paths.push(path.clone());
    }
    apply(grpc, session, changes, paths, surface, diffs);

    let (mut changes, mut paths, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    for (path, e) in &tree.entries {
        if e.kind != Kind::File {
            continue;
        }
        let Some(p) = utf8(path, surface, diffs) else { continue };
        let data = corpus.read(path);
        if e.size >= STREAM_AT {
            // With `resume`, as a client whose connection dropped part-way: the first part
            // (and some garbage after it that the resumed upload must replace), then the rest
            // from where the first part ended.
            let sent = if resume {
                let cut = data.len() / 3;
                let mut first = data[..cut].to_vec();
                first.extend_from_slice(b"garbage the resume replaces");
                grpc.write_file(session, p, &first, Some(e.mode), 256 * 1024)
                    .and_then(|_| grpc.write_file_at(session, p, cut as u64, &data[cut..], None, 256 * 1024))
            } else {
                grpc.write_file(session, p, &data, Some(e.mode), 256 * 1024)
            };
            if let Err(err) = sent {
                diffs.add(surface, show(path), format!("WriteFile refused: {err}"));
            }
            continue;
        }
        if bytes + data.len() > BATCH_BYTES {
            apply(
                grpc,
                session,
                std::mem::take(&mut changes),
                std::mem::take(&mut paths),
                surface,
                diffs,
            );
            bytes = 0;
        }
        bytes += data.len();
        changes.push(pb::BatchChange {
            op: Some(Op::Put(pb::BatchPut {
                path: p.to_owned(),
                data,
                mode: Some(e.mode),
                no_parents: false,
                mtime_ns: None,
            })),
        });
        paths.push(path.clone());
    }
    apply(grpc, session, changes, paths, surface, diffs);

    let (mut changes, mut paths) = (Vec::new(), Vec::new());
    for (path, e) in tree.entries.iter().rev() {
        if e.kind != Kind::Dir || e.mode == 0o755 {
            continue;
        }
        let Some(p) = utf8(path, surface, diffs) else { continue };
        changes.push(pb::BatchChange {
            op: Some(Op::Chmod(pb::BatchChmod {
                path: p.to_owned(),
                mode: e.mode,
            })),
        });
        paths.push(path.clone());
    }
    apply(grpc, session, changes, paths, surface, diffs);
}
