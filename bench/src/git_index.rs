//! Reading the stat data git keeps in `.git/index` and comparing it with what a file system shows
//! now: the check git's `refresh index` makes before it decides to re-read a file.
//!
//! Only versions 2 and 3 of the format are read (what `git add`/`git status` write unless
//! `index.version` or `feature.manyFiles` asks for 4), with SHA-1 object names. Extensions after
//! the entries are not read. This module never writes an index.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The stat fields of one index entry, as git stores them: every value truncated to 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatData {
    pub ctime: u32,
    pub ctime_ns: u32,
    pub mtime: u32,
    pub mtime_ns: u32,
    pub dev: u32,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl StatData {
    /// What git would record for `meta` (the same 32-bit truncation).
    pub fn from_metadata(meta: &std::fs::Metadata) -> StatData {
        StatData {
            ctime: meta.ctime() as u32,
            ctime_ns: meta.ctime_nsec() as u32,
            mtime: meta.mtime() as u32,
            mtime_ns: meta.mtime_nsec() as u32,
            dev: meta.dev() as u32,
            ino: meta.ino() as u32,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size() as u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub stat: StatData,
    /// The merge stage (0 for a normal entry).
    pub stage: u8,
}

/// Why an index could not be read (this crate has no `thiserror`; the messages are below).
#[derive(Debug)]
pub enum IndexError {
    Signature([u8; 4]),
    Version(u32),
    Truncated { entry: usize, count: usize },
    Path(usize),
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::Signature(s) => write!(f, "not a git index (signature {s:?})"),
            IndexError::Version(v) => write!(f, "index version {v} is not supported (only 2 and 3)"),
            IndexError::Truncated { entry, count } => write!(f, "the index ends inside entry {entry} of {count}"),
            IndexError::Path(i) => write!(f, "entry {i} has no NUL-terminated path"),
        }
    }
}

impl std::error::Error for IndexError {}

const HEADER: usize = 12;
/// Bytes of an entry before its path: ten 32-bit stat fields, the SHA-1, 16-bit flags.
const FIXED: usize = 40 + 20 + 2;
const EXTENDED_FLAG: u16 = 0x4000;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The entries of an index file's bytes, in index order.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, IndexError> {
    if bytes.len() < HEADER {
        return Err(IndexError::Truncated { entry: 0, count: 0 });
    }
    let sig = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if &sig != b"DIRC" {
        return Err(IndexError::Signature(sig));
    }
    let version = be32(bytes, 4);
    if !(2..=3).contains(&version) {
        return Err(IndexError::Version(version));
    }
    let count = be32(bytes, 8) as usize;
    let mut entries = Vec::with_capacity(count);
    let mut at = HEADER;
    for i in 0..count {
        let truncated = IndexError::Truncated { entry: i, count };
        if at + FIXED > bytes.len() {
            return Err(truncated);
        }
        let f = |k: usize| be32(bytes, at + 4 * k);
        let stat = StatData {
            ctime: f(0),
            ctime_ns: f(1),
            mtime: f(2),
            mtime_ns: f(3),
            dev: f(4),
            ino: f(5),
            mode: f(6),
            uid: f(7),
            gid: f(8),
            size: f(9),
        };
        let flags = u16::from_be_bytes([bytes[at + 60], bytes[at + 61]]);
        let mut name_at = at + FIXED;
        if version == 3 && flags & EXTENDED_FLAG != 0 {
            name_at += 2;
        }
        let rest = bytes.get(name_at..).ok_or(truncated)?;
        let len = rest.iter().position(|&b| b == 0).ok_or(IndexError::Path(i))?;
        entries.push(Entry {
            path: String::from_utf8_lossy(&rest[..len]).into_owned(),
            stat,
            stage: ((flags >> 12) & 3) as u8,
        });
        // The entry is padded with 1 to 8 NULs to a multiple of 8 bytes.
        let used = name_at - at + len;
        at += (used + 8) & !7;
    }
    Ok(entries)
}

/// Which of the fields git compares differ between `index` and `now`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mismatch {
    pub ino: bool,
    pub mtime: bool,
    pub ctime: bool,
    pub size: bool,
    pub owner: bool,
}

impl Mismatch {
    /// `dev` and `mode` are left out: git ignores `st_dev` unless `core.checkStat` says so, and
    /// a mode change is a content change, not a stat one.
    pub fn between(index: &StatData, now: &StatData) -> Mismatch {
        Mismatch {
            ino: index.ino != now.ino,
            mtime: (index.mtime, index.mtime_ns) != (now.mtime, now.mtime_ns),
            ctime: (index.ctime, index.ctime_ns) != (now.ctime, now.ctime_ns),
            size: index.size != now.size,
            owner: (index.uid, index.gid) != (now.uid, now.gid),
        }
    }

    pub fn any(&self) -> bool {
        self.ino || self.mtime || self.ctime || self.size || self.owner
    }
}

/// Counts over the entries of one index: how many differ at all and in each field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub entries: usize,
    pub differ: usize,
    pub ino: usize,
    pub mtime: usize,
    pub ctime: usize,
    pub size: usize,
    pub owner: usize,
    /// Entries missing on the file system (counted in `differ` too).
    pub missing: usize,
}

impl Tally {
    pub fn add(&mut self, m: Option<Mismatch>) {
        self.entries += 1;
        match m {
            None => {
                self.missing += 1;
                self.differ += 1;
            }
            Some(m) => {
                self.differ += usize::from(m.any());
                self.ino += usize::from(m.ino);
                self.mtime += usize::from(m.mtime);
                self.ctime += usize::from(m.ctime);
                self.size += usize::from(m.size);
                self.owner += usize::from(m.owner);
            }
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.entries += o.entries;
        self.differ += o.differ;
        self.ino += o.ino;
        self.mtime += o.mtime;
        self.ctime += o.ctime;
        self.size += o.size;
        self.owner += o.owner;
        self.missing += o.missing;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} differ (ino {}, mtime {}, ctime {}, size {}, uid/gid {}, missing {})",
            self.differ, self.entries, self.ino, self.mtime, self.ctime, self.size, self.owner, self.missing
        )
    }
}

/// Compare every stage-0 entry of `root/.git/index` with `symlink_metadata` of its file under
/// `root`, on `threads` threads (lookups in parallel, as git's preload does).
pub fn compare_tree(root: &Path, threads: usize) -> anyhow::Result<Tally> {
    use anyhow::Context;
    let index = root.join(".git/index");
    let bytes = std::fs::read(&index).with_context(|| format!("reading {}", index.display()))?;
    let entries = parse(&bytes).with_context(|| format!("parsing {}", index.display()))?;
    let entries: Vec<Entry> = entries.into_iter().filter(|e| e.stage == 0).collect();
    let chunk = entries.len().div_ceil(threads.max(1)).max(1);
    let tallies = std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut t = Tally::default();
                    for e in part {
                        let now = std::fs::symlink_metadata(root.join(&e.path)).ok();
                        t.add(now.map(|m| Mismatch::between(&e.stat, &StatData::from_metadata(&m))));
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut total = Tally::default();
    for t in tallies {
        total.merge(&t.map_err(|_| anyhow::anyhow!("a comparison thread panicked"))?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::command::{git, run};

    /// One v2 entry by hand: the fields, then the padding rule.
    fn entry(stat: [u32; 10], flags: u16, path: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for v in stat {
            b.extend(v.to_be_bytes());
        }
        b.extend([0xab; 20]);
        b.extend(flags.to_be_bytes());
        b.extend(path.as_bytes());
        let used = FIXED + path.len();
        b.resize((used + 8) & !7, 0);
        b
    }

    fn index(version: u32, entries: &[Vec<u8>]) -> Vec<u8> {
        let mut b = b"DIRC".to_vec();
        b.extend(version.to_be_bytes());
        b.extend((entries.len() as u32).to_be_bytes());
        for e in entries {
            b.extend(e);
        }
        b.extend([0u8; 20]);
        b
    }

    #[test]
    fn parses_fields_and_padding() {
        // Path lengths that need 1 and 8 bytes of padding.
        let a = "abcdefghijklmnopq"; // 62 + 17 = 79 -> 80
        let b = "ab"; // 62 + 2 = 64 -> 72
        let bytes = index(
            2,
            &[
                entry([1, 2, 3, 4, 5, 6, 0o100644, 7, 8, 9], a.len() as u16, a),
                entry([10, 20, 30, 40, 50, 60, 0o120000, 70, 80, 90], 0x1000 | 2, b),
            ],
        );
        let e = parse(&bytes).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, a);
        assert_eq!(
            e[0].stat,
            StatData {
                ctime: 1,
                ctime_ns: 2,
                mtime: 3,
                mtime_ns: 4,
                dev: 5,
                ino: 6,
                mode: 0o100644,
                uid: 7,
                gid: 8,
                size: 9
            }
        );
        assert_eq!((e[1].path.as_str(), e[1].stage, e[1].stat.ino), (b, 1, 60));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!(
            parse(b"XXXX\0\0\0\x02\0\0\0\0"),
            Err(IndexError::Signature(_))
        ));
        assert!(matches!(parse(&index(4, &[])), Err(IndexError::Version(4))));
        let mut bytes = index(2, &[entry([0; 10], 1, "a")]);
        bytes.truncate(HEADER + 30);
        assert!(matches!(
            parse(&bytes),
            Err(IndexError::Truncated { entry: 0, count: 1 })
        ));
    }

    #[test]
    fn mismatch_truncates_like_git() {
        let a = StatData {
            ino: 5,
            mtime: 100,
            ..Default::default()
        };
        let same = Mismatch::between(&a, &a);
        assert!(!same.any());
        let b = StatData {
            dev: 9,
            mode: 0o100755,
            ..a
        };
        assert!(!Mismatch::between(&a, &b).any(), "dev and mode are not compared");
        let c = StatData {
            ino: 6,
            mtime_ns: 1,
            ..a
        };
        let m = Mismatch::between(&a, &c);
        assert!(m.ino && m.mtime && !m.ctime && !m.size && !m.owner);
        let mut t = Tally::default();
        t.add(Some(m));
        t.add(Some(same));
        t.add(None);
        assert_eq!((t.entries, t.differ, t.ino, t.mtime, t.missing), (3, 2, 1, 1, 1));
    }

    /// A real index written by git matches the tree it was refreshed on, and sees a touch.
    #[test]
    fn real_git_index_matches_its_tree() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("d/e"))?;
        std::fs::write(dir.join("a.txt"), "a")?;
        std::fs::write(dir.join("d/e/b.txt"), "bb")?;
        std::os::unix::fs::symlink("a.txt", dir.join("link"))?;
        run(git(dir).args(["init", "-q"]))?;
        run(git(dir).args(["add", "-A"]))?;
        run(git(dir).args(["commit", "-q", "-m", "x"]))?;
        run(git(dir).args(["status", "--porcelain"]))?;
        let t = compare_tree(dir, 2)?;
        assert_eq!((t.entries, t.differ), (3, 0), "{t}");
        let e = parse(&std::fs::read(dir.join(".git/index"))?)?;
        let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "d/e/b.txt", "link"]);
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(dir.join("a.txt"))?
            .set_modified(old)?;
        let t = compare_tree(dir, 1)?;
        assert_eq!((t.differ, t.missing), (1, 0), "{t}");
        Ok(())
    }
}
