//! The adversarial corpus: a directory tree, deterministic from a seed, holding what file
//! systems, archives and git get wrong: sizes at block and chunk edges, large random and
//! repetitive files, a file of one repeated 2 MiB block, sparse files, unusual modes, symlink
//! targets that normalising code rewrites (`./`, `..`, `//`, a trailing `/`), dangling and
//! directory targets, NFC and NFD spellings of one name, 255-byte names, deep nesting, empty
//! directories, a real packed `.git` made by `git`, and `.git~`/`GIT~1~` outside any repository.
//!
//! Its expected readings for surfaces that cannot hold everything are projections of its
//! snapshot ([`git_projection`], [`tree_spelling`]), never a second hand-written list.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::Differences;
use crate::seeded::{self, Rng};
use crate::snapshot::{Entry, Kind, Snapshot};

/// The seed when `AETHER_INTEGRITY_SEED` is not set.
pub const DEFAULT_SEED: u64 = 32;

const MIB: usize = 1024 * 1024;

/// The seed of this run (`AETHER_INTEGRITY_SEED`, else [`DEFAULT_SEED`]).
pub fn seed() -> u64 {
    std::env::var("AETHER_INTEGRITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A generated corpus: where it is and what it holds.
pub struct Corpus {
    pub root: PathBuf,
    pub seed: u64,
    pub snapshot: Snapshot,
}

/// Names of the corpus's notable entries, for tests that look at one of them.
pub mod names {
    pub const NFC: &str = "names/caf\u{e9}.txt";
    pub const NFD: &str = "names/cafe\u{301}.txt";
    pub const DOT_GIT_TILDE: &str = "names/.git~";
    pub const GIT_1_TILDE: &str = "names/GIT~1~";
    pub const REPO: &str = "repo";
    pub const SPARSE: &str = "sparse/holes-3MiB.bin";
    pub const RANDOM_BIG: &str = "big/random-4MiB.bin";
}

struct Writer<'a> {
    root: &'a Path,
    seed: u64,
    /// Directories and their final modes, applied last (a 0700 parent must not stop us).
    dirs: Vec<(PathBuf, u32)>,
}

impl Writer<'_> {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn dir(&mut self, rel: &str, mode: u32) {
        let p = self.path(rel);
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&p)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        self.dirs.push((p, mode));
    }

    fn file(&mut self, rel: &str, bytes: &[u8], mode: u32) {
        let p = self.path(rel);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
    }

    fn random(&mut self, rel: &str, len: usize, mode: u32) {
        let bytes = seeded::bytes(self.seed, rel, len);
        self.file(rel, &bytes, mode);
    }

    fn link(&mut self, rel: &str, target: &str) {
        let p = self.path(rel);
        symlink(target, &p).unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
    }

    /// A file of `len` bytes with data only in `pieces` (offset, length): the rest are holes.
    fn sparse(&mut self, rel: &str, len: u64, pieces: &[(u64, usize)]) {
        let p = self.path(rel);
        let f = File::create(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        for (i, (off, n)) in pieces.iter().enumerate() {
            let data = seeded::bytes(self.seed, &format!("{rel}#{i}"), *n);
            f.write_all_at(&data, *off)
                .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        }
        f.set_len(len)
            .unwrap_or_else(|e| panic!("truncate {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod a sparse file");
    }
}

/// Repetitive text: numbered lines from a small vocabulary.
fn repetitive_text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "{n:08} the quick brown fox jumps over the lazy dog; fn main() {{ println!(\"{}\"); }}\n",
                n % 97
            )
            .as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

impl Corpus {
    /// Write the corpus into `root` (created; must not exist yet) and read its snapshot back.
    /// Needs `git` for the nested repository.
    pub fn generate(root: &Path, seed: u64) -> Corpus {
        assert!(!root.exists(), "{} exists already", root.display());
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(root)
            .expect("the corpus root");
        let mut w = Writer {
            root,
            seed,
            dirs: Vec::new(),
        };

        // Sizes at the edges of pages, blocks and the chunking threshold.
        w.dir("sizes", 0o755);
        for n in EDGE_SIZES {
            w.random(&format!("sizes/{n}.bin"), n, 0o644);
        }

        // Large files: random, repetitive text, one 2 MiB block three times (chunk dedup).
        w.dir("big", 0o755);
        w.random(names::RANDOM_BIG, 4 * MIB, 0o644);
        w.file("big/text-3MiB.txt", &repetitive_text(3 * MIB), 0o644);
        let block = seeded::bytes(seed, "big/block", 2 * MIB);
        w.file("big/repeated-2MiB-block-x3.bin", &block.repeat(3), 0o644);

        // Sparse files.
        w.dir("sparse", 0o755);
        w.sparse(
            names::SPARSE,
            3 * MIB as u64,
            &[(0, 4096), (MIB as u64 + 123, 5000), (3 * MIB as u64 - 4096, 4096)],
        );
        w.sparse("sparse/only-hole-2MiB.bin", 2 * MIB as u64, &[]);
        w.sparse("sparse/data-then-hole.bin", (3 * MIB / 2) as u64, &[(0, 10)]);

        // Modes.
        w.dir("modes", 0o755);
        w.file("modes/exec.sh", b"#!/bin/sh\necho integrity\n", 0o755);
        w.file("modes/owner-only-exec", b"#!/bin/sh\nexit 0\n", 0o700);
        w.file("modes/group-exec", b"#!/bin/sh\nexit 1\n", 0o750);
        w.file("modes/private", b"secret\n", 0o600);
        w.file("modes/read-only", b"do not touch\n", 0o444);
        w.file("modes/group-read", b"group\n", 0o640);
        w.file("modes/setuid", b"#!/bin/sh\nid\n", 0o4755);
        w.dir("modes/private-dir", 0o700);
        w.file("modes/private-dir/inside.txt", b"inside a 0700 directory\n", 0o644);
        w.dir("modes/private-empty-dir", 0o700);
        w.dir("modes/group-dir", 0o750);
        w.file("modes/group-dir/x", b"x\n", 0o644);

        // Symlinks whose targets normalising code would rewrite, dangling and directory targets.
        w.dir("links", 0o755);
        w.dir("links/sub", 0o755);
        w.file("links/target.txt", b"the target\n", 0o644);
        w.file("links/sub/inside.txt", b"inside sub\n", 0o644);
        let long_target = format!("{}x", "../".repeat(300));
        for (name, target) in [
            ("dot-slash", "./target.txt"),
            ("dotdot", "../sizes/1.bin"),
            ("dotdot-dot-x", "../.././x"),
            ("abs-double-slash", "//abs//path"),
            ("mid-double-slash", "sub//inside.txt"),
            ("mid-dot", "sub/./inside.txt"),
            ("trailing-slash", "sub/"),
            ("dir", "sub"),
            ("dir-dot", "sub/."),
            ("dot", "."),
            ("dangling", "no/such/file"),
            ("absolute", "/etc/hostname"),
            ("self-loop", "self-loop"),
            ("unicode-target", "caf\u{e9}/\u{f1}"),
            ("space target", "with space/x y"),
            ("long-target", long_target.as_str()),
        ] {
            w.link(&format!("links/{name}"), target);
        }

        // Names: NFC and NFD spellings of one name, 255-byte names, characters URLs, JSON and
        // shells treat specially, and the names git reserves plus `~` outside any repository.
        w.dir("names", 0o755);
        w.file(names::NFC, b"precomposed e-acute (NFC)\n", 0o644);
        w.file(names::NFD, b"e + combining acute (NFD)\n", 0o644);
        w.file(
            &format!("names/{}.txt", "L".repeat(251)),
            b"255-byte ASCII name\n",
            0o644,
        );
        w.file(
            &format!("names/{}x.txt", "\u{e9}".repeat(125)),
            b"255-byte name of two-byte characters\n",
            0o644,
        );
        let long_dir = format!("names/{}", "d".repeat(255));
        w.dir(&long_dir, 0o755);
        w.file(
            &format!("{long_dir}/inner.txt"),
            b"inside a 255-byte directory name\n",
            0o644,
        );
        for name in [
            "with space.txt",
            " leading-space",
            "trailing-space ",
            "tab\tin-name",
            "hash#mark",
            "question?mark",
            "percent%41",
            "plus+and&amp",
            "quote'\"double",
            "back\\slash",
            "-starts-with-dash",
            "ends-with-dot.",
            "UPPER.TXT",
            "upper.txt",
            "emoji-\u{1f600}",
            "\u{65e5}\u{672c}\u{8a9e}.txt",
        ] {
            w.file(&format!("names/{name}"), format!("name {name:?}\n").as_bytes(), 0o644);
        }
        w.file(names::DOT_GIT_TILDE, b"an ordinary file named .git~\n", 0o644);
        w.file(names::GIT_1_TILDE, b"an ordinary file named GIT~1~\n", 0o644);

        // Deep nesting.
        let deep: String = (0..40).map(|i| format!("/level-{i:02}")).collect();
        w.dir(&format!("deep{deep}"), 0o755);
        let mut d = String::from("deep");
        w.dirs.push((root.join(&d), 0o755));
        for i in 0..40 {
            d.push_str(&format!("/level-{i:02}"));
            w.dirs.push((root.join(&d), 0o755));
        }
        w.file(&format!("deep{deep}/leaf.txt"), b"forty levels down\n", 0o644);

        // Empty directories, alone and nested.
        w.dir("empty", 0o755);
        w.dir("empty-nest/a/b/c", 0o755);
        w.dirs.push((root.join("empty-nest"), 0o755));
        w.dirs.push((root.join("empty-nest/a"), 0o755));
        w.dirs.push((root.join("empty-nest/a/b"), 0o755));

        // Many small files in one directory (listings in batches, small-file prefetch): more
        // than a piece of a mount's batched listing (2,048 entries), and than a directory read
        // takes at once, so listings are joined from pieces and directory reads resume.
        w.dir("many", 0o755);
        let mut rng = Rng::new(seed);
        for i in 0..2100 {
            // Up to 3,000 bytes for the first 300, a few bytes for the rest.
            let n = rng.below(if i < 300 { 3000 } else { 40 }) as usize;
            if i % 2 == 0 {
                w.random(&format!("many/file-{i:04}.bin"), n, 0o644);
            } else {
                let text = repetitive_text(n);
                w.file(&format!("many/file-{i:04}.txt"), &text, 0o644);
            }
        }

        // A real repository with a packed .git.
        make_repo(&mut w);

        for (dir, mode) in w.dirs.iter().rev() {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod the corpus root");

        let diffs = Differences::new();
        let snapshot = Snapshot::from_dir(root, &diffs, "corpus").expect("read the corpus back");
        diffs.assert_none("reading the generated corpus");
        Corpus {
            root: root.to_owned(),
            seed,
            snapshot,
        }
    }

    /// The bytes of a corpus file (for range checks).
    pub fn read(&self, rel: &[u8]) -> Vec<u8> {
        let p = self.root.join(OsStr::from_bytes(rel));
        std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Bytes `start..start+len` of a corpus file.
    pub fn read_range(&self, rel: &[u8], start: u64, len: usize) -> Vec<u8> {
        let p = self.root.join(OsStr::from_bytes(rel));
        let f = OpenOptions::new()
            .read(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, start)
            .unwrap_or_else(|e| panic!("read {} at {start}: {e}", p.display()));
        buf
    }

    /// A copy of the corpus as git can hold it, committed in a new repository at `dir`
    /// (`git init`, `add -A`, `commit`, `gc`): the nested `.git` directories are left out.
    pub fn git_repository(&self, dir: &Path) {
        crate::process::ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", self.root.display()))
                .arg(dir),
        );
        for (path, e) in &self.snapshot.entries {
            if e.kind == Kind::Dir && path.rsplit(|b| *b == b'/').next() == Some(b".git") {
                let p = dir.join(OsStr::from_bytes(path));
                std::fs::remove_dir_all(&p).unwrap_or_else(|e| panic!("rm -r {}: {e}", p.display()));
            }
        }
        let g = |args: &[&str]| crate::process::ok(crate::git::git(dir, Duration::from_secs(300)).args(args));
        g(&["init", "-q", "-b", "main", "--template="]);
        g(&["config", "core.autocrlf", "false"]);
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "the integrity corpus"]);
        g(&["gc", "-q"]);
    }
}

/// `repo/`: a repository made by the real `git` (no template, pinned identity and dates): a
/// few commits, a tag, a file over 1 MiB, a symlink, then `git gc`, so `.git` holds a pack,
/// packed refs and the empty directories gc leaves.
fn make_repo(w: &mut Writer<'_>) {
    let repo = w.path(names::REPO);
    w.dir(names::REPO, 0o755);
    let g = |args: &[&str]| crate::process::ok(crate::git::git(&repo, Duration::from_secs(120)).args(args));
    g(&["init", "-q", "-b", "main", "--template="]);
    g(&["config", "core.autocrlf", "false"]);
    w.dir("repo/src", 0o755);
    w.file("repo/README.md", b"# nested repository\n", 0o644);
    w.file("repo/src/lib.rs", b"pub fn one() -> u32 {\n    1\n}\n", 0o644);
    w.random("repo/blob.bin", MIB + MIB / 4, 0o644);
    w.link("repo/readme-link", "./README.md");
    g(&["add", "-A"]);
    g(&["commit", "-q", "-m", "first"]);
    w.file(
        "repo/src/lib.rs",
        b"pub fn one() -> u32 {\n    1\n}\npub fn two() -> u32 {\n    2\n}\n",
        0o644,
    );
    w.file("repo/run.sh", b"#!/bin/sh\necho run\n", 0o755);
    g(&["add", "-A"]);
    g(&["commit", "-q", "-m", "second"]);
    g(&["tag", "-a", "v1", "-m", "version one"]);
    g(&["gc", "-q"]);
}

/// What a git tree can hold of `s`: no `.git` directories (nor anything in them), no empty
/// directories (nor directories holding only directories), files 0644 or 0755 (owner's
/// execute bit), directories 0755.
pub fn git_projection(s: &Snapshot) -> Snapshot {
    let in_git_dir = |p: &[u8]| p.split(|b| *b == b'/').any(|c| c == b".git");
    let mut out = Snapshot::default();
    for (path, e) in &s.entries {
        if in_git_dir(path) || e.kind == Kind::Dir {
            continue;
        }
        let entry = match e.kind {
            Kind::File => Entry {
                mode: if e.mode & 0o100 != 0 { 0o755 } else { 0o644 },
                ..e.clone()
            },
            _ => e.clone(),
        };
        // Every ancestor of a file or symlink is a directory git holds.
        let mut end = 0;
        while let Some(i) = path[end..].iter().position(|b| *b == b'/') {
            end += i;
            out.insert(path[..end].to_vec(), Entry::dir(0o755));
            end += 1;
        }
        out.insert(path.clone(), entry);
    }
    out
}

/// How git trees (and so a clone's checkout) spell the session's names: a name git reserves
/// for itself (`.git`, `git~1`, any case, trailing dots or spaces) followed by any number of
/// `~` gets one more `~` (`docs/decisions.md`, "A session may hold `.git`").
pub fn tree_spelling(s: &Snapshot) -> Snapshot {
    s.map(|path, e| {
        let spelled: Vec<Vec<u8>> = path.split(|b| *b == b'/').map(spell_component).collect();
        Some((spelled.join(&b'/'), e.clone()))
    })
}

fn spell_component(c: &[u8]) -> Vec<u8> {
    let bare = {
        let mut end = c.len();
        while end > 0 && c[end - 1] == b'~' {
            end -= 1;
        }
        &c[..end]
    };
    let reserved = {
        let rest = if bare.len() >= 4 && bare[..4].eq_ignore_ascii_case(b".git") {
            Some(&bare[4..])
        } else if bare.len() >= 5 && bare[..5].eq_ignore_ascii_case(b"git~1") {
            Some(&bare[5..])
        } else {
            None
        };
        rest.is_some_and(|r| r.iter().all(|b| *b == b'.' || *b == b' '))
    };
    let mut out = c.to_vec();
    if reserved {
        out.push(b'~');
    }
    out
}

/// File sizes the corpus must cover (its own test asserts each is present).
pub const EDGE_SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1];
