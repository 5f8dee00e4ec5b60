//! Self-describing file versions for the concurrent-writer checker, and the ledger of what was
//! written when.
//!
//! A version is a sequence of 64-byte cells; every cell starts with a text header naming the
//! file, the writer, the writer's sequence number, the version's length and the cell's index
//! (`007:02:00000123:00200000:000042|`), followed by filler that is a function of all of them.
//! Any read of at least two cells, whole or from any offset, therefore names the one version it
//! must be a piece of, and is checked byte for byte against it: a mix of two versions, bytes of
//! one version cut to another's length, or zeros where bytes should be are all "torn".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub const CELL: usize = 64;
const HEADER: usize = 32;
/// The shortest non-empty version: the first cell's header and a few bytes.
pub const SMALLEST: u32 = HEADER as u32 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub file: u16,
    pub writer: u8,
    pub seq: u32,
    pub len: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "f{}/w{}/#{} ({} bytes)", self.file, self.writer, self.seq, self.len)
    }
}

fn header(v: &Version, cell: usize) -> [u8; HEADER] {
    let s = format!("{:03}:{:02}:{:08}:{:08}:{:06}|", v.file, v.writer, v.seq, v.len, cell);
    let mut out = [0; HEADER];
    out.copy_from_slice(&s.as_bytes()[..HEADER]);
    out
}

fn filler(v: &Version, cell: usize) -> [u8; CELL - HEADER] {
    let mut x = (u64::from(v.file) << 48) ^ (u64::from(v.writer) << 40) ^ (u64::from(v.seq) << 8) ^ cell as u64;
    x ^= u64::from(v.len).rotate_left(29);
    let mut out = [0; CELL - HEADER];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
    }
    out
}

/// Bytes `start..end` of version `v`.
pub fn slice(v: &Version, start: usize, end: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(end.saturating_sub(start));
    let mut cell = start / CELL;
    while cell * CELL < end {
        let mut c = [0u8; CELL];
        c[..HEADER].copy_from_slice(&header(v, cell));
        c[HEADER..].copy_from_slice(&filler(v, cell));
        let (a, b) = (cell * CELL, cell * CELL + CELL);
        let from = start.max(a) - a;
        let to = end.min(b) - a;
        out.extend_from_slice(&c[from..to]);
        cell += 1;
    }
    out
}

/// The whole of version `v`.
pub fn bytes(v: &Version) -> Vec<u8> {
    slice(v, 0, v.len as usize)
}

fn parse_header(h: &[u8]) -> Option<(Version, usize)> {
    let s = std::str::from_utf8(h).ok()?;
    let s = s.strip_suffix('|')?;
    let mut it = s.split(':');
    let file = it.next()?.parse().ok()?;
    let writer = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let len = it.next()?.parse().ok()?;
    let cell = it.next()?.parse().ok()?;
    Some((Version { file, writer, seq, len }, cell))
}

/// Check `data`, read from `offset` of file number `file`: it must be exactly the bytes at that
/// offset of the one version its first complete cell header names. `whole`: the read was of the
/// whole file, so its length must also be the version's length. Empty data is the caller's to
/// judge (only an empty version or a truncation explains it).
pub fn check(file: u16, data: &[u8], offset: u64, whole: bool) -> Result<Version, String> {
    let first = (CELL - (offset as usize % CELL)) % CELL;
    if data.len() < first + HEADER {
        return Err(format!(
            "{} bytes at offset {offset}: too short to hold a cell header",
            data.len()
        ));
    }
    let (v, cell) = parse_header(&data[first..first + HEADER]).ok_or_else(|| {
        format!(
            "no cell header at offset {} (bytes {:?})",
            offset + first as u64,
            String::from_utf8_lossy(&data[first..first + HEADER])
        )
    })?;
    if v.file != file {
        return Err(format!("bytes of file {} in file {file} ({v})", v.file));
    }
    if cell as u64 * CELL as u64 != offset + first as u64 {
        return Err(format!("cell {cell} of {v} found at offset {}", offset + first as u64));
    }
    let end = offset as usize + data.len();
    if end > v.len as usize {
        return Err(format!(
            "{} bytes at offset {offset} run past the end of {v}",
            data.len()
        ));
    }
    if whole && data.len() != v.len as usize {
        return Err(format!("a whole read of {} bytes, but {v}", data.len()));
    }
    let want = slice(&v, offset as usize, end);
    if want != data {
        let at = want.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!(
            "{} bytes at offset {offset} differ from {v} from offset {}",
            data.len(),
            offset as usize + at
        ));
    }
    Ok(v)
}

/// Check `data`, read from `offset`, as the server's copy of a version still being written
/// back page by page: the version its first cell names, each `page`-aligned page of `data`
/// either that version's bytes or zeros (a page not written back yet), the read ending at the
/// version's end or at a page boundary. A page of another version's bytes is never accepted.
/// What [`check_pages`] says of bytes that are all zeros: no page names a version.
pub const ALL_ZEROS: &str = "every cell is zeros";

pub fn check_pages(file: u16, data: &[u8], offset: u64, page: usize) -> Result<Version, String> {
    let first = (CELL - (offset as usize % CELL)) % CELL;
    // The version is named by the first cell whose page was written back (the pages before it
    // may still be zeros: the kernel writes pages back in no set order).
    let mut named = None;
    let mut at = first;
    while at + HEADER <= data.len() {
        let h = &data[at..at + HEADER];
        if h.iter().any(|b| *b != 0) {
            named = Some((at, parse_header(h)));
            break;
        }
        at += CELL;
    }
    let v = match named {
        Some((at, Some((v, cell)))) if v.file == file && (cell * CELL) as u64 == offset + at as u64 => v,
        Some((at, _)) => return Err(format!("no cell of file {file} at offset {}", offset + at as u64)),
        None => return Err(ALL_ZEROS.to_owned()),
    };
    let end = offset as usize + data.len();
    if end > v.len as usize || (end != v.len as usize && !end.is_multiple_of(page)) {
        return Err(format!(
            "a read ending at {end} is neither the end of {v} nor a page boundary"
        ));
    }
    let mut at = offset as usize;
    while at < end {
        let next = ((at / page) + 1) * page;
        let piece = &data[at - offset as usize..next.min(end) - offset as usize];
        if piece != slice(&v, at, next.min(end)).as_slice() && piece.iter().any(|b| *b != 0) {
            let cell = at.div_ceil(CELL) * CELL - offset as usize;
            let holds = data.get(cell..cell + HEADER).and_then(parse_header);
            return Err(format!(
                "the page at {at} holds neither {v}'s bytes nor zeros ({})",
                holds.map_or("no cell header".to_owned(), |(w, c)| format!("cell {c} of {w}"))
            ));
        }
        at = next;
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not returned yet.
    Pending,
    /// The call returned success (for a mount: `fsync` returned 0) at this tick.
    Acked(u64),
    /// The call failed: the version may or may not have been applied.
    Failed,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub version: Version,
    pub start: u64,
    pub outcome: Outcome,
    /// A truncation (`open(O_TRUNC)` in a mount): it explains an empty file, but is a step of a
    /// write rather than a write of its own, so it never supersedes anything.
    pub truncation: bool,
}

/// Every write started, with its start tick and outcome, per file. Ticks come from one counter:
/// a write that started after another was acknowledged has a larger start tick than that ack.
#[derive(Debug, Default)]
pub struct Ledger {
    clock: AtomicU64,
    files: Mutex<HashMap<u16, Vec<Record>>>,
}

impl Ledger {
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Record that writing `v` starts now.
    pub fn start(&self, v: Version) {
        let start = self.tick();
        self.files.lock().entry(v.file).or_default().push(Record {
            version: v,
            start,
            outcome: Outcome::Pending,
            truncation: false,
        });
    }

    /// Record that `file` is truncated to empty now (a step of writer `writer`'s next write).
    pub fn truncation(&self, file: u16, writer: u8) {
        let start = self.tick();
        self.files.lock().entry(file).or_default().push(Record {
            version: Version {
                file,
                writer,
                seq: 0,
                len: 0,
            },
            start,
            outcome: Outcome::Acked(start),
            truncation: true,
        });
    }

    /// Record how writing `v` ended.
    pub fn finish(&self, v: Version, ok: bool) {
        let end = self.tick();
        let mut files = self.files.lock();
        if let Some(r) = files
            .get_mut(&v.file)
            .and_then(|rs| rs.iter_mut().rev().find(|r| r.version == v && !r.truncation))
        {
            r.outcome = if ok { Outcome::Acked(end) } else { Outcome::Failed };
        }
    }

    /// Whether `v` was ever started.
    pub fn known(&self, v: &Version) -> bool {
        self.files
            .lock()
            .get(&v.file)
            .is_some_and(|rs| rs.iter().any(|r| r.version == *v && !r.truncation))
    }

    /// Whether writing `v` was under way at some point after tick `since`: not yet
    /// acknowledged then (pending, failed, or acknowledged later).
    pub fn in_flight_after(&self, v: &Version, since: u64) -> bool {
        self.files.lock().get(&v.file).is_some_and(|rs| {
            rs.iter().any(|r| {
                r.version == *v
                    && !r.truncation
                    && match r.outcome {
                        Outcome::Acked(at) => at > since,
                        Outcome::Pending | Outcome::Failed => true,
                    }
            })
        })
    }

    /// Whether a mount (`writers`) was writing a version of `file` of at least `len` bytes at
    /// tick `since` or later: pages read back as zeros may be its pages not written back yet.
    pub fn mount_in_flight_after(&self, file: u16, writers: &[u8], len: usize, since: u64) -> bool {
        self.files.lock().get(&file).is_some_and(|rs| {
            rs.iter().any(|r| {
                writers.contains(&r.version.writer)
                    && r.version.len as usize >= len
                    && !r.truncation
                    && match r.outcome {
                        Outcome::Acked(at) => at > since,
                        Outcome::Pending | Outcome::Failed => true,
                    }
            })
        })
    }

    /// Whether some write made `file` empty (an empty version or a truncation) by now.
    pub fn empty_explained(&self, file: u16) -> bool {
        self.files
            .lock()
            .get(&file)
            .is_some_and(|rs| rs.iter().any(|r| r.version.len == 0))
    }

    /// Writes started per writer.
    pub fn started_by(&self, writer: u8) -> usize {
        self.files
            .lock()
            .values()
            .flatten()
            .filter(|r| !r.truncation && r.version.writer == writer)
            .count()
    }

    /// Acknowledged writes per writer.
    pub fn acked_by(&self, writer: u8) -> usize {
        self.files
            .lock()
            .values()
            .flatten()
            .filter(|r| !r.truncation && r.version.writer == writer && matches!(r.outcome, Outcome::Acked(_)))
            .count()
    }

    pub fn failed_by(&self, writer: u8) -> usize {
        self.files
            .lock()
            .values()
            .flatten()
            .filter(|r| !r.truncation && r.version.writer == writer && r.outcome == Outcome::Failed)
            .count()
    }

    /// Judge a file's final content (`None`: empty): it must be a version (or a truncation, for
    /// empty) that no acknowledged write started after its own acknowledgement supersedes.
    /// `Err` names the acknowledged write that went missing.
    pub fn judge_final(&self, file: u16, last: Option<Version>) -> Result<(), String> {
        let files = self.files.lock();
        let rs: &[Record] = files.get(&file).map(Vec::as_slice).unwrap_or_default();
        let candidates: Vec<&Record> = rs
            .iter()
            .filter(|r| match last {
                Some(v) => !r.truncation && r.version == v,
                None => r.version.len == 0,
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!("final content {last:?} was never written"));
        }
        let mut reasons = Vec::new();
        for c in &candidates {
            let end = match c.outcome {
                Outcome::Acked(t) if c.truncation => c.start.min(t),
                Outcome::Acked(t) => t,
                Outcome::Pending | Outcome::Failed => u64::MAX,
            };
            let superseding = rs
                .iter()
                .filter(|w| {
                    !w.truncation && !std::ptr::eq(*w, *c) && matches!(w.outcome, Outcome::Acked(_)) && w.start > end
                })
                .max_by_key(|w| w.start);
            match superseding {
                None => return Ok(()),
                Some(w) => reasons.push(format!(
                    "{} (ended at tick {end}) was superseded by acknowledged {} started at tick {}",
                    if c.truncation {
                        "a truncation".to_owned()
                    } else {
                        c.version.to_string()
                    },
                    w.version,
                    w.start
                )),
            }
        }
        Err(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Version = Version {
        file: 3,
        writer: 2,
        seq: 7,
        len: 10_000,
    };

    #[test]
    fn pages_of_a_version_in_flight_may_be_zeros_but_never_another_versions_bytes() {
        let mut data = bytes(&V);
        assert_eq!(check_pages(3, &data, 0, 4096), Ok(V));
        data[4096..8192].fill(0);
        assert_eq!(check_pages(3, &data, 0, 4096), Ok(V));
        assert!(check(3, &data, 0, true).is_err(), "zeros are not the version");
        assert_eq!(check_pages(3, &data[..8192], 0, 4096), Ok(V), "a page-aligned prefix");
        assert!(check_pages(3, &data[..8000], 0, 4096).is_err(), "cut inside a page");
        let other = Version { seq: 8, ..V };
        data[4096..8192].copy_from_slice(&slice(&other, 4096, 8192));
        let e = check_pages(3, &data, 0, 4096).unwrap_err();
        assert!(e.contains("f3/w2/#8"), "names what the page holds: {e}");
        assert!(check_pages(4, &bytes(&V), 0, 4096).is_err(), "another file's bytes");
        assert_eq!(
            check_pages(3, &slice(&V, 4160, 10_000), 4160, 4096),
            Ok(V),
            "from an offset"
        );
        // The first page still zeros: the version is named by the first page written back.
        let mut late = bytes(&V);
        late[..4096].fill(0);
        assert_eq!(check_pages(3, &late, 0, 4096), Ok(V));
        late[4096..8192].copy_from_slice(&slice(&other, 4096, 8192));
        assert!(check_pages(3, &late, 0, 4096).is_err(), "then another version's page");
        assert_eq!(check_pages(3, &vec![0; 8192], 0, 4096), Err(ALL_ZEROS.to_owned()));
    }
}
