//! A tarball of 5,000+ files extracted into a mount with the real `tar`: every file's checksum
//! verified through the mount (`sha256sum -c`), the whole tree (names, kinds, modes, sizes,
//! contents, symlink targets, mtimes) compared with the tree the tarball was made from, and then,
//! after unmount, the same tree read back from the server over REST.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Node, Rest, assert_same_tree, digest, fuse_available, ok, snapshot, step, timed};

const LIMIT: Duration = Duration::from_secs(300);
/// The mtime tar stores for every entry (`--mtime`), checked through the mount after extraction.
const MTIME: i64 = 1_700_000_000;

/// xorshift64*: the corpus depends on nothing but the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: [&str; 16] = [
    "static", "int", "return", "struct", "const", "void", "if", "else", "for", "while", "size_t", "u64", "buffer",
    "inode", "session", "mount",
];

/// Text that looks like source: words and punctuation, `n` bytes.
fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        v.extend_from_slice(WORDS[rng.below(16) as usize].as_bytes());
        v.push([b' ', b' ', b';', b'\n', b'(', b')'][rng.below(6) as usize]);
    }
    v.truncate(n);
    v
}

pub struct Corpus {
    pub files: usize,
    pub bytes: u64,
    pub symlinks: usize,
    pub dirs: usize,
}

/// Writes the corpus under `root`: 5,000 regular files in 60 nested directories (up to six
/// deep) with sizes from 0 to 64 KiB, four files around and over 1 MiB (the server's chunking
/// threshold), eight executable scripts, a few read-only and private files, 30 symlinks
/// (relative, to a directory, dangling, absolute) and three empty directories.
pub fn write_corpus(root: &Path, seed: u64) -> Corpus {
    let mut rng = Rng(seed | 1);
    let mut dirs: Vec<(String, usize)> = ["src", "include", "docs", "assets", "tests", "tools"]
        .iter()
        .map(|d| ((*d).to_owned(), 1))
        .collect();
    for i in 0..54 {
        let candidates: Vec<&(String, usize)> = dirs.iter().filter(|(_, depth)| *depth < 6).collect();
        let (parent, depth) = candidates[rng.below(candidates.len() as u64) as usize].clone();
        dirs.push((format!("{parent}/d{i:02}-{}", WORDS[rng.below(16) as usize]), depth + 1));
    }
    for (d, _) in &dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let exts = ["c", "h", "txt", "rs", "json", "md", "S", ""];
    let mut stats = Corpus {
        files: 0,
        bytes: 0,
        symlinks: 0,
        dirs: dirs.len(),
    };
    let mut files = Vec::new();
    for i in 0..5000 {
        let dir = &dirs[rng.below(dirs.len() as u64) as usize].0;
        let ext = exts[i % exts.len()];
        let name = if ext.is_empty() {
            format!("{dir}/f{i:04}")
        } else {
            format!("{dir}/f{i:04}.{ext}")
        };
        let size = match rng.below(100) {
            0..=1 => 0,
            2..=74 => rng.below(1024),
            75..=96 => 1024 + rng.below(7 * 1024),
            _ => 8192 + rng.below(56 * 1024),
        } as usize;
        let mut body = format!("// {name}\n").into_bytes();
        body.extend(text(&mut rng, size));
        body.truncate(size);
        let (mode, body) = match i % 625 {
            // Eight executable scripts that print their own name.
            7 => (0o755, format!("#!/bin/sh\necho 'tool {i}'\n").into_bytes()),
            311 => (0o444, body),
            500 => (0o600, body),
            _ => (0o644, body),
        };
        std::fs::write(root.join(&name), &body).unwrap();
        std::fs::set_permissions(root.join(&name), std::fs::Permissions::from_mode(mode)).unwrap();
        stats.files += 1;
        stats.bytes += body.len() as u64;
        files.push(name);
    }
    // Large files: chunked by the server. Exactly the threshold, one byte over, random bytes,
    // and a file that repeats one 64 KiB block (identical chunks).
    let block = rng.bytes(64 << 10);
    let large: [(&str, Vec<u8>); 4] = [
        ("assets/exactly-1MiB.bin", rng.bytes(1 << 20)),
        ("assets/1MiB-plus-1.bin", rng.bytes((1 << 20) + 1)),
        ("assets/random-3MiB.bin", rng.bytes((3 << 20) + 123)),
        ("assets/repeated-2MiB.bin", block.repeat(32)),
    ];
    for (name, body) in &large {
        std::fs::write(root.join(name), body).unwrap();
        stats.files += 1;
        stats.bytes += body.len() as u64;
    }
    // Symlinks next to files, pointing at files elsewhere, at a directory, at nothing.
    for k in 0..26 {
        let from = &files[rng.below(files.len() as u64) as usize];
        let to = &files[rng.below(files.len() as u64) as usize];
        let from_dir = Path::new(from).parent().unwrap();
        let depth = from_dir.components().count();
        let target = format!("{}{to}", "../".repeat(depth));
        std::os::unix::fs::symlink(&target, root.join(from_dir).join(format!("link{k:02}"))).unwrap();
    }
    std::os::unix::fs::symlink("../include", root.join("src/include-dir")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("docs/dangling")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/absolute/target", root.join("docs/absolute")).unwrap();
    std::os::unix::fs::symlink("f-none", root.join("tools/dangling-sibling")).unwrap();
    stats.symlinks = 30;
    for d in ["empty", "assets/empty", "tests/empty/deeper"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    stats.dirs += 4;
    stats
}

/// Every entry's mtime that is not `MTIME`, for the failure message.
fn mtimes_not(root: &Path, snap: &BTreeMap<String, Node>, want: i64) -> Vec<String> {
    snap.keys()
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            (m.mtime() != want).then(|| format!("{p}: {}", m.mtime()))
        })
        .collect()
}

#[test]
fn untar_of_5000_files_reads_back_through_the_mount_and_the_api() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("corpus");
    let corpus = step("generate the corpus", || write_corpus(&reference, 0x5eed_ae7e));
    assert!(corpus.files >= 5000 && corpus.symlinks >= 30, "{} files", corpus.files);
    eprintln!(
        "[mount workload] corpus: {} files, {} bytes, {} dirs, {} symlinks",
        corpus.files, corpus.bytes, corpus.dirs, corpus.symlinks
    );
    let tarball = work.path().join("corpus.tar");
    ok(
        timed(LIMIT, "tar")
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg(format!("--mtime=@{MTIME}"))
            .arg("-cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&reference)
            .arg("."),
        String::new,
    );
    // Checksums of the reference files, verified later through the mount by sha256sum.
    let sums = ok(
        timed(LIMIT, "sh")
            .arg("-c")
            .arg("find . -type f -print0 | sort -z | xargs -0 sha256sum")
            .current_dir(&reference),
        String::new,
    );
    assert_eq!(sums.lines().count(), corpus.files);
    let sums_file = work.path().join("SHA256SUMS");
    std::fs::write(&sums_file, &sums).unwrap();
    let expected = snapshot(&reference);

    // The same extraction on the local disk, for the log only (timings are the benchmarks' job).
    let native = work.path().join("native");
    std::fs::create_dir(&native).unwrap();
    step("tar -xf into a local directory (for comparison)", || {
        ok(
            timed(LIMIT, "tar").arg("-xf").arg(&tarball).arg("-C").arg(&native),
            String::new,
        )
    });
    let dir = env.home().join("m");
    let m = Mount::new(&env, &id, &dir);
    std::fs::create_dir(m.path("corpus")).unwrap();
    step("tar -xf into the mount", || {
        ok(
            timed(LIMIT, "tar")
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(m.path("corpus")),
            || m.log(),
        )
    });
    step("sha256sum -c through the mount", || {
        ok(
            timed(LIMIT, "sha256sum")
                .args(["-c", "--quiet", "--strict"])
                .arg(&sums_file)
                .current_dir(m.path("corpus")),
            || m.log(),
        )
    });
    let through_mount = step("walk and read every file through the mount", || {
        snapshot(&m.path("corpus"))
    });
    assert_same_tree(&expected, &through_mount, "the mount after tar -x");
    let wrong = mtimes_not(&m.path("corpus"), &through_mount, MTIME);
    assert!(
        wrong.is_empty(),
        "tar's mtimes not kept: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    // An executable from the tarball runs from the mount.
    let tool = ok(
        &mut timed(LIMIT, m.path("corpus").join(exe_path(&expected)).to_str().unwrap()),
        || m.log(),
    );
    assert!(tool.starts_with("tool "), "{tool}");
    step("unmount (sends what is queued)", || m.unmount());

    // The server has every file. Over REST: one export streams every file's bytes; the tree
    // listing gives every entry's attributes; every large (chunked) file and every seventh of
    // the others is also read with its own GET (each GET costs about 5 ms in a debug build).
    let rest = Rest::new(&env);
    let in_corpus = |snap: BTreeMap<String, Node>| -> BTreeMap<String, Node> {
        snap.into_iter()
            .filter_map(|(p, n)| p.strip_prefix("corpus/").map(|p| (p.to_owned(), n)))
            .collect()
    };
    let exported = step("export the session over REST", || in_corpus(rest.export_snapshot(&id)));
    assert_same_tree(&expected, &exported, "the server's export after unmount");
    let sample = |p: &str| {
        matches!(expected.get(p.strip_prefix("corpus/").unwrap_or(p)), Some(Node::File { size, .. }) if *size >= 1 << 20)
            || digest(p.as_bytes()).is_multiple_of(7)
    };
    let listed = step("list the tree and GET a sample over REST", || {
        in_corpus(rest.snapshot_reading(&id, sample))
    });
    let expected_sample: BTreeMap<String, Node> = expected
        .iter()
        .filter(|(p, n)| !matches!(n, Node::File { .. }) || sample(&format!("corpus/{p}")))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect();
    assert!(expected_sample.len() > 700, "{}", expected_sample.len());
    assert_same_tree(
        &expected_sample,
        &listed,
        "the server's files read one by one after unmount",
    );
}

/// The first executable file of the corpus.
fn exe_path(snap: &BTreeMap<String, Node>) -> String {
    snap.iter()
        .find(|(_, n)| matches!(n, Node::File { mode: 0o755, .. }))
        .map(|(p, _)| p.clone())
        .unwrap()
}
