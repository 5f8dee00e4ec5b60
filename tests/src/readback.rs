//! Read paths: each reads a session (or a directory a mount shows) back into a [`Snapshot`],
//! checking on the way what that surface promises about itself (a listing's size is the size of
//! the bytes served, an ETag names the content listed, a `Range` reply carries exactly the
//! requested bytes of the file), and counts what it read so that no check passes by reading
//! nothing ([`Coverage::require`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::corpus::Corpus;
use crate::grpc::Grpc;
use crate::report::Differences;
use crate::rest::Rest;
use crate::runtime::parallel_map;
use crate::snapshot::{Entry, Kind, Snapshot, show};

const MIB: u64 = 1 << 20;

/// What a read path read: whole files, their bytes, and range reads checked.
#[derive(Debug, Default)]
pub struct Coverage {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub ranges: AtomicU64,
}

impl Coverage {
    pub fn file(&self, bytes: usize) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn range(&self) {
        self.ranges.fetch_add(1, Ordering::Relaxed);
    }

    pub fn summary(&self) -> String {
        format!(
            "{} files, {} bytes, {} ranges",
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.ranges.load(Ordering::Relaxed)
        )
    }

    /// Record a difference unless at least `files` whole files of `bytes` bytes in all were read
    /// (and at least `ranges` ranges checked).
    pub fn require(&self, files: usize, bytes: u64, ranges: u64, surface: &str, diffs: &Differences) {
        let (f, b, r) = (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.ranges.load(Ordering::Relaxed),
        );
        if f < files as u64 || b < bytes || r < ranges {
            diffs.add(
                surface,
                "(coverage)",
                format!("read {f} files, {b} bytes, {r} ranges; expected at least {files} files, {bytes} bytes, {ranges} ranges"),
            );
        }
    }
}

/// Where a read path reports: the surface's name, the differences it found, what it read.
#[derive(Clone, Copy)]
pub struct Report<'a> {
    pub surface: &'a str,
    pub diffs: &'a Differences,
    pub cov: &'a Coverage,
}

impl Report<'_> {
    pub fn add(&self, path: impl Into<String>, what: impl Into<String>) {
        self.diffs.add(self.surface, path, what);
    }

    /// See [`Coverage::require`].
    pub fn require(&self, files: usize, bytes: u64, ranges: u64) {
        self.cov.require(files, bytes, ranges, self.surface, self.diffs);
    }
}

/// A name a listing may hold: not empty, no empty, `.` or `..` component.
fn valid_path(p: &str) -> bool {
    !p.is_empty() && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn mode_of(v: &Value) -> u32 {
    v["mode"].as_u64().unwrap_or(0) as u32 & 0o7777
}

/// The ranges checked in a file of `size` bytes: a few bytes around every page, block and
/// chunk edge inside it (`edges`: chunk starts from the stat's extents), the first 4097 bytes,
/// and a window across the 1 MiB boundary. Inclusive (start, end) pairs.
pub fn boundary_ranges(size: u64, edges: &[u64]) -> Vec<(u64, u64)> {
    if size == 0 {
        return Vec::new();
    }
    let mut points = vec![
        1,
        4095,
        4096,
        4097,
        65536,
        MIB - 1,
        MIB,
        MIB + 1,
        2 * MIB,
        3 * MIB,
        size - 1,
    ];
    points.extend(edges.iter().copied().take(6));
    points.extend(edges.last().copied());
    let mut out: Vec<(u64, u64)> = points
        .into_iter()
        .filter(|p| *p < size)
        .map(|p| (p.saturating_sub(2), (p + 2).min(size - 1)))
        .collect();
    out.push((0, size.min(4097) - 1));
    if size > MIB + 200 {
        out.push((MIB - 200, MIB + 200));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn extents_of(v: &Value) -> Vec<u64> {
    v["extents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["offset"].as_u64())
                .filter(|o| *o > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// REST: `GET /tree?recursive=true` (at `at`), every file read whole with `GET /files` (eight
/// at a time). Checks that the listing's names are valid and unique, that each file's bytes
/// are as many as the listing's size and `Content-Length`, and that its ETag is the listed oid.
pub fn rest_snapshot(rest: &Rest, session: &str, at: Option<&str>, rep: Report<'_>) -> Option<Snapshot> {
    let entries = match rest.tree(session, "", true, at, Duration::from_secs(60)) {
        Ok(e) => e,
        Err(e) => {
            rep.add("(listing)", format!("recursive listing failed: {e}"));
            return None;
        }
    };
    let mut snap = Snapshot::default();
    let mut files: Vec<(String, Value)> = Vec::new();
    for v in &entries {
        let path = v["path"].as_str().unwrap_or_default().to_owned();
        if !valid_path(&path) {
            rep.add(show(path.as_bytes()), format!("invalid name in the listing: {v}"));
            continue;
        }
        let entry = match v["kind"].as_str() {
            Some("dir") => Entry::dir(mode_of(v)),
            Some("symlink") => Entry::symlink(v["symlink_target"].as_str().unwrap_or_default().as_bytes()),
            Some("file") => {
                files.push((path.clone(), v.clone()));
                continue;
            }
            other => {
                rep.add(show(path.as_bytes()), format!("unknown kind {other:?}"));
                continue;
            }
        };
        if snap.insert(path.as_bytes().to_vec(), entry).is_some() {
            rep.add(show(path.as_bytes()), "listed twice");
        }
    }
    let read = parallel_map(&files, 8, |(path, _)| {
        rest.get_file(session, path.as_bytes(), None, at, Duration::from_secs(60))
    });
    for ((path, v), reply) in files.iter().zip(read) {
        let shown = show(path.as_bytes());
        let reply = match reply {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                rep.add(shown, format!("GET: status {}: {}", r.status, r.text()));
                continue;
            }
            Err(e) => {
                rep.add(shown, format!("GET: {e}"));
                continue;
            }
        };
        rep.cov.file(reply.body.len());
        let listed = v["size"].as_u64().unwrap_or(u64::MAX);
        if listed != reply.body.len() as u64 {
            rep.add(
                shown.clone(),
                format!("listing says {listed} bytes, GET returned {}", reply.body.len()),
            );
        }
        let length = reply.header("content-length");
        if length.as_deref() != Some(reply.body.len().to_string().as_str()) {
            rep.add(
                shown.clone(),
                format!("Content-Length {length:?} for {} bytes", reply.body.len()),
            );
        }
        let etag = reply.header("etag").unwrap_or_default();
        let oid = v["oid"].as_str().unwrap_or_default();
        if etag.trim_matches('"') != oid {
            rep.add(shown.clone(), format!("ETag {etag} but the listing's oid is {oid}"));
        }
        if snap
            .insert(path.as_bytes().to_vec(), Entry::file(mode_of(v), &reply.body))
            .is_some()
        {
            rep.add(shown, "listed twice");
        }
    }
    Some(snap)
}

/// REST `Range` reads at the boundaries of every file of `tree`: each reply must be 206 with
/// the right `Content-Range` and exactly the corpus's bytes.
pub fn rest_ranges(rest: &Rest, session: &str, at: Option<&str>, corpus: &Corpus, tree: &Snapshot, rep: Report<'_>) {
    let files: Vec<(Vec<u8>, u64)> = tree
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 1)
        .map(|(p, e)| (p.clone(), e.size))
        .collect();
    parallel_map(&files, 4, |(path, size)| {
        let stat = rest.stat(session, path, at).unwrap_or_default();
        let edges = extents_of(&stat);
        let oid = stat["oid"].as_str().unwrap_or_default().to_owned();
        for (s, e) in boundary_ranges(*size, &edges) {
            let what = format!("Range bytes={s}-{e}");
            match rest.get_file(session, path, Some((s, e)), at, Duration::from_secs(60)) {
                Ok(r) => {
                    rep.cov.range();
                    let want = corpus.read_range(path, s, (e - s + 1) as usize);
                    let cr = r.header("content-range").unwrap_or_default();
                    let want_cr = format!("bytes {s}-{e}/{size}");
                    let etag = r.header("etag").unwrap_or_default();
                    if r.status != 206 || cr != want_cr || r.body != want || etag.trim_matches('"') != oid {
                        rep.add(
                            show(path),
                            format!(
                                "{what}: status {} Content-Range {cr:?} (want {want_cr:?}), ETag {etag} (stat: {oid}), {} bytes{}",
                                r.status,
                                r.body.len(),
                                if r.body == want { "" } else { ", wrong bytes" }
                            ),
                        );
                    }
                }
                Err(err) => rep.add(show(path), format!("{what}: {err}")),
            }
        }
    });
}

fn stat_entry(s: &aether_proto::v1::Stat) -> Option<Entry> {
    match s.kind.as_str() {
        "dir" => Some(Entry::dir(s.mode)),
        "symlink" => Some(Entry::symlink(
            s.symlink_target.as_deref().unwrap_or_default().as_bytes(),
        )),
        _ => None,
    }
}

/// gRPC: the tree walked one `ListTree` per directory (breadth first), every entry's `Stat`
/// compared with its listing, every file read whole with `ReadFile` (its first message's stat
/// must name the listed content and size).
pub fn grpc_snapshot(grpc: &Grpc, session: &str, at: Option<&str>, rep: Report<'_>) -> Option<Snapshot> {
    let mut snap = Snapshot::default();
    let mut queue = vec![String::new()];
    let mut files = Vec::new();
    let mut listed = 0usize;
    while let Some(dir) = queue.pop() {
        let listing = match grpc.list_tree(session, &dir, false, at, Duration::from_secs(60)) {
            Ok(l) => l,
            Err(e) => {
                rep.add(show(dir.as_bytes()), format!("ListTree failed: {e}"));
                continue;
            }
        };
        for st in listing.entries {
            listed += 1;
            if listed > 1_000_000 {
                rep.add("(listing)", "more than a million entries: a cycle?");
                return Some(snap);
            }
            let path = st.path.clone();
            if !valid_path(&path) || !(dir.is_empty() || path.starts_with(&format!("{dir}/"))) {
                rep.add(show(path.as_bytes()), format!("invalid name in the listing of {dir:?}"));
                continue;
            }
            match grpc.stat(session, &path, at) {
                Ok(s) if s.kind == st.kind && s.mode == st.mode && s.size == st.size && s.oid == st.oid => {}
                Ok(s) => rep.add(
                    show(path.as_bytes()),
                    format!(
                        "Stat ({} {:o} {} {:?}) differs from ListTree ({} {:o} {} {:?})",
                        s.kind, s.mode, s.size, s.oid, st.kind, st.mode, st.size, st.oid
                    ),
                ),
                Err(e) => rep.add(show(path.as_bytes()), format!("Stat failed: {e}")),
            }
            if st.kind == "dir" {
                queue.push(path.clone());
            }
            match stat_entry(&st) {
                Some(e) => {
                    if snap.insert(path.as_bytes().to_vec(), e).is_some() {
                        rep.add(show(path.as_bytes()), "listed twice");
                    }
                }
                None if st.kind == "file" => files.push(st),
                None => rep.add(show(path.as_bytes()), format!("unknown kind {:?}", st.kind)),
            }
        }
    }
    let read = parallel_map(&files, 8, |st| {
        grpc.read_file(session, &st.path, 0, None, at, Duration::from_secs(60))
    });
    for (st, r) in files.iter().zip(read) {
        let shown = show(st.path.as_bytes());
        match r {
            Ok(r) => {
                rep.cov.file(r.data.len());
                if r.stat.oid != st.oid || r.stat.size != r.data.len() as u64 || st.size != r.stat.size {
                    rep.add(
                        shown.clone(),
                        format!(
                            "ReadFile sent {} bytes under stat {:?}/{} while ListTree said {:?}/{}",
                            r.data.len(),
                            r.stat.oid,
                            r.stat.size,
                            st.oid,
                            st.size
                        ),
                    );
                }
                if snap
                    .insert(st.path.as_bytes().to_vec(), Entry::file(st.mode, &r.data))
                    .is_some()
                {
                    rep.add(shown, "listed twice");
                }
            }
            Err(e) => rep.add(shown, format!("ReadFile failed: {e}")),
        }
    }
    Some(snap)
}

/// gRPC `ReadFile` at offsets: the same boundaries as [`rest_ranges`].
pub fn grpc_ranges(grpc: &Grpc, session: &str, at: Option<&str>, corpus: &Corpus, tree: &Snapshot, rep: Report<'_>) {
    let files: Vec<(Vec<u8>, u64)> = tree
        .entries
        .iter()
        .filter(|(_, e)| e.kind == Kind::File && e.size > 1)
        .map(|(p, e)| (p.clone(), e.size))
        .collect();
    parallel_map(&files, 4, |(path, size)| {
        let p = String::from_utf8_lossy(path).into_owned();
        let edges: Vec<u64> = grpc
            .stat(session, &p, at)
            .map(|s| s.extents.iter().map(|x| x.offset).filter(|o| *o > 0).collect())
            .unwrap_or_default();
        for (s, e) in boundary_ranges(*size, &edges) {
            let len = e - s + 1;
            match grpc.read_file(session, &p, s, Some(len), at, Duration::from_secs(60)) {
                Ok(r) => {
                    rep.cov.range();
                    let want = corpus.read_range(path, s, len as usize);
                    if r.data != want || r.stat.size != *size {
                        rep.add(
                            show(path),
                            format!(
                                "ReadFile offset {s} length {len}: {} bytes{}, stat size {}",
                                r.data.len(),
                                if r.data == want { "" } else { ", wrong bytes" },
                                r.stat.size
                            ),
                        );
                    }
                }
                Err(err) => rep.add(show(path), format!("ReadFile offset {s} length {len}: {err}")),
            }
        }
    });
}

/// An exported archive (tar, or tar.gz with `gzip`) parsed with raw names.
pub fn archive_snapshot(bytes: &[u8], gzip: bool, rep: Report<'_>) -> Option<Snapshot> {
    let raw;
    let tar: &[u8] = if gzip {
        let mut out = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out) {
            rep.add("(archive)", format!("not a gzip stream: {e}"));
            return None;
        }
        raw = out;
        &raw
    } else {
        bytes
    };
    match crate::tar_raw::parse(tar) {
        Ok(entries) => {
            for e in &entries {
                if matches!(e.typeflag, b'0' | 0 | b'7') {
                    rep.cov.file(e.data.len());
                }
            }
            Some(crate::tar_raw::snapshot(&entries, rep.diffs, rep.surface))
        }
        Err(e) => {
            rep.add("(archive)", format!("unreadable tar: {e}"));
            None
        }
    }
}

/// A directory (a mount) read through the kernel, within `limit` (a hung read is a difference;
/// the caller then tears the mount down).
pub fn dir_snapshot(
    root: &Path,
    limit: Duration,
    surface: &str,
    diffs: &std::sync::Arc<Differences>,
    cov: &std::sync::Arc<Coverage>,
) -> Option<Snapshot> {
    let (root, surface_s, d, c) = (root.to_owned(), surface.to_owned(), diffs.clone(), cov.clone());
    let r = crate::runtime::thread_with_limit("dir-snapshot", limit, move || {
        let s = Snapshot::from_dir(&root, &d, &surface_s);
        if let Ok(s) = &s {
            for e in s.entries.values().filter(|e| e.kind == Kind::File) {
                c.file(e.size as usize);
            }
        }
        s
    });
    match r {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            diffs.add(surface, "(walk)", format!("reading the tree failed: {e}"));
            None
        }
        None => {
            diffs.add(
                surface,
                "(walk)",
                format!("reading the tree did not finish within {limit:?} (hung)"),
            );
            None
        }
    }
}
