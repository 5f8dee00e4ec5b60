//! Batched loading: a directory never listed before comes with the listings of the directories
//! below it (a cold `find` or `git status` pays one round trip per few thousand entries instead
//! of one per directory), and a cold read of a small file brings the bytes of its small
//! siblings (a cold `cat` or `grep` pays one round trip per directory instead of one per file).
//! What comes this way is what a listing or a read would have returned: listings are merged
//! like any listing, bytes are cached under their content id.

use crate::backend::{Backend, BackendResult, EntryKind, RemoteEntry};

/// Entries a first listing may bring in all (its own included): the mount's first listing of
/// its root brings the whole tree of a checkout the size of Linux's in one call (the server
/// caps it at 200,000).
pub const WALK_ENTRIES: u32 = 200_000;
/// Largest file whose bytes come with its siblings': a file of one cache block or less is
/// verified whole against its git blob id, as one read of it would be.
pub const INLINE_MAX: u64 = crate::content_cache::BLOCK;
/// Bytes of siblings one read may bring.
pub const INLINE_BUDGET: u64 = 4 << 20;

/// What [`Backend::list_dirs`] should bring besides the listing of the directory asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListDirs {
    /// Entries in all; listings of directories below are added, depth first, while they fit.
    pub max_entries: u32,
    /// Largest file whose bytes come inline (0: none).
    pub inline_max: u64,
    /// Inline bytes in all.
    pub inline_budget: u64,
    /// First name whose bytes may come inline (names in byte order).
    pub inline_from: String,
}

/// One directory's complete listing, and bytes of some of its files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedDir {
    /// Session path of the directory (`""` is the root).
    pub path: String,
    pub entries: Vec<RemoteEntry>,
    /// `(content id, bytes)` of small files.
    pub contents: Vec<(String, Vec<u8>)>,
    /// The version of the session state the listing shows (see `recent_events`); `None` when
    /// the server did not say.
    pub seq: Option<i64>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// [`Backend::list_dirs`] with one `list` per directory and one `read` per inline file: what a
/// backend without a batched call does (same answers, more round trips).
pub fn list_dirs_one_by_one<B: Backend + ?Sized>(b: &B, path: &str, opts: &ListDirs) -> BackendResult<Vec<ListedDir>> {
    let first = b.list(path)?;
    let mut contents = Vec::new();
    if opts.inline_max > 0 {
        let mut budget = opts.inline_budget;
        for e in &first {
            let Some(id) = e.content_id.as_deref() else { continue };
            if e.kind != EntryKind::File || e.size == 0 || e.size > opts.inline_max || e.name < opts.inline_from {
                continue;
            }
            if e.size > budget {
                break;
            }
            budget -= e.size;
            contents.push((id.to_owned(), b.read(&join(path, &e.name), id, 0, e.size)?));
        }
    }
    let mut total = first.len();
    let subdirs = |dir: &str, entries: &[RemoteEntry]| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .map(|e| join(dir, &e.name))
            .rev()
            .collect()
    };
    let mut stack = subdirs(path, &first);
    let mut out = vec![ListedDir {
        path: path.to_owned(),
        entries: first,
        contents,
        seq: None,
    }];
    while total < opts.max_entries as usize
        && let Some(dir) = stack.pop()
    {
        let Ok(entries) = b.list(&dir) else { continue };
        if total + entries.len() > opts.max_entries as usize {
            break;
        }
        total += entries.len();
        stack.extend(subdirs(&dir, &entries));
        out.push(ListedDir {
            path: dir,
            entries,
            contents: Vec::new(),
            seq: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::RemoteOp;
    use crate::memory_backend::MemoryBackend;

    fn tree() -> MemoryBackend {
        let b = MemoryBackend::new();
        for d in ["a", "a/x", "a/x/deep", "b", "c"] {
            b.apply(&RemoteOp::Mkdir { path: d.into() }).unwrap();
        }
        for (p, data) in [
            ("a/1", &b"one"[..]),
            ("a/2", &b"two!"[..]),
            ("a/3", &[7u8; 50][..]),
            ("a/4", &b"four"[..]),
            ("a/x/deep/f", &b"f"[..]),
            ("b/1", &b"b1"[..]),
            ("c/1", &b"c1"[..]),
        ] {
            b.write_external(p, data);
        }
        b
    }

    #[test]
    fn listings_below_come_depth_first_while_they_fit_each_one_complete() {
        let b = tree();
        let only = list_dirs_one_by_one(&b, "", &ListDirs::default()).unwrap();
        assert_eq!(only.len(), 1, "max_entries 0 lists the directory alone");
        assert_eq!(only[0].entries.len(), 3);
        let all = list_dirs_one_by_one(
            &b,
            "",
            &ListDirs {
                max_entries: 100,
                ..ListDirs::default()
            },
        )
        .unwrap();
        let paths: Vec<&str> = all.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["", "a", "a/x", "a/x/deep", "b", "c"]);
        // 3 (root) + 5 (a) + 1 (a/x) = 9; a/x/deep's one entry would make 10.
        let capped = list_dirs_one_by_one(
            &b,
            "",
            &ListDirs {
                max_entries: 9,
                ..ListDirs::default()
            },
        )
        .unwrap();
        let paths: Vec<&str> = capped.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["", "a", "a/x"]);
        assert!(capped.iter().all(|d| d.contents.is_empty()));
    }

    #[test]
    fn inline_bytes_start_at_the_name_asked_for_and_stop_at_the_caps() {
        let b = tree();
        let got = list_dirs_one_by_one(
            &b,
            "a",
            &ListDirs {
                max_entries: 0,
                inline_max: 10,
                inline_budget: 7,
                inline_from: "2".into(),
            },
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        // "2" (4 bytes) fits, "3" is over inline_max, "4" (4 bytes) would pass the budget of 7.
        let ids: Vec<&str> = got[0].contents.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, [b.oid("a/2").unwrap().as_str()]);
        assert_eq!(got[0].contents[0].1, b"two!");
    }
}
