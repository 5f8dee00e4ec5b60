//! Builders of the hostile inputs of issue 34's probes, shared by the focused tests and the
//! soak that replays them all at once: tar archives whose headers claim far more than they
//! send (a symlink target, a GNU long name, sparse entries), a tar of many files, git
//! repositories too deep or very wide, gzip bodies that grow a thousandfold. Large content is
//! streamed into the encoder, never held whole, so a test's own memory does not hide the
//! server's.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::hostile::git;

/// `data` gzip'd.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Write `len` copies of `byte` to `out` without holding them.
fn repeat(out: &mut impl Write, byte: u8, mut len: usize) {
    let piece = [byte; 64 << 10];
    while len > 0 {
        let n = len.min(piece.len());
        out.write_all(&piece[..n]).unwrap();
        len -= n;
    }
}

/// `len` bytes of `byte`, gzip'd (a compression bomb when `len` is large).
pub fn gzip_repeated(byte: u8, len: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    repeat(&mut gz, byte, len);
    gz.finish().unwrap()
}

/// A GNU header block of `kind` named `name`, announcing `size` bytes of data.
pub fn header(name: &str, kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Symlink { 0o777 } else { 0o644 });
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// Zeros up to the next 512-byte block after `written` bytes.
fn pad(out: &mut impl Write, written: u64) {
    repeat(out, 0, ((512 - written % 512) % 512) as usize);
}

/// The length of a pax record `key=value` of `value_len` bytes (the length counts itself).
fn pax_record_len(key: &str, value_len: usize) -> usize {
    let body = key.len() + value_len + 3; // ' ', '=', '\n'
    (1..=20)
        .map(|digits| body + digits)
        .find(|len| len.to_string().len() == len - body)
        .unwrap()
}

/// A gzip'd tar of one symlink `link` whose target (a pax `linkpath` record) is `target_len`
/// bytes: 4,096 is the most any session holds. The target is streamed into the encoder, so a
/// target of hundreds of MiB is an upload of a few hundred KiB.
pub fn symlink_target_tar_gz(target_len: usize) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    let record = pax_record_len("linkpath", target_len);
    gz.write_all(header("PaxHeader", EntryType::XHeader, record as u64).as_bytes())
        .unwrap();
    write!(gz, "{record} linkpath=").unwrap();
    repeat(&mut gz, b'a', target_len);
    gz.write_all(b"\n").unwrap();
    pad(&mut gz, record as u64);
    let mut link = header("link", EntryType::Symlink, 0);
    link.set_link_name("a").unwrap();
    link.set_cksum();
    gz.write_all(link.as_bytes()).unwrap();
    repeat(&mut gz, 0, 1024);
    gz.finish().unwrap()
}

/// A tar cut short after a GNU long-name header claiming `claimed` bytes and `sent` bytes of
/// that name: what the server may buffer is decided by the claim, before any byte of it.
pub fn long_name_claim_tar(claimed: u64, sent: usize) -> Vec<u8> {
    let mut out = header("././@LongLink", EntryType::GNULongName, claimed)
        .as_bytes()
        .to_vec();
    repeat(&mut out, b'n', sent);
    out
}

/// A tar of `entries` old-GNU sparse files `s0`, `s1`, ... of `real_size` bytes each, all
/// holes but their last 512 bytes (`tail`): about 1 KiB sent per file.
pub fn sparse_tar(entries: usize, real_size: u64, tail: &[u8; 512]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in 0..entries {
        let mut h = header(&format!("s{n}"), EntryType::GNUSparse, 512);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(real_size - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(real_size);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(tail);
    }
    repeat(&mut out, 0, 1024);
    out
}

/// A tar of `n` small files `f0`, `f1`, ...; without its end-of-archive blocks when `ended`
/// is false (a stream still coming).
pub fn many_files_tar(n: usize, ended: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..n {
        let data = format!("file {i}");
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, format!("f{i}"), data.as_bytes()).unwrap();
    }
    let mut out = builder.into_inner().unwrap();
    if !ended {
        out.truncate(out.len() - 1024);
    }
    out
}

/// The head of a tar entry `name` announcing `size` bytes (an upload to cut short after it).
pub fn file_head(name: &str, size: u64) -> Vec<u8> {
    header(name, EntryType::Regular, size).as_bytes().to_vec()
}

/// A bare repository under `root` whose `main` is one commit of `d/d/.../d/f`, `depth`
/// directories deep, made by git itself; git serves trees up to its own depth limit, which a
/// hostile server raises.
pub fn deep_repo(root: &Path, depth: usize) -> PathBuf {
    let repo = root.join("deep.git");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "--bare"], None);
    git(&repo, &["config", "core.maxTreeDepth", "100000"], None);
    let deep = vec!["d"; depth].join("/");
    let stream = format!(
        "commit refs/heads/main\ncommitter t <t@t> 0 +0000\ndata 5\ndeep\nM 100644 inline {deep}/f\ndata 7\nbottom\n\n"
    );
    git(&repo, &["fast-import", "--quiet"], Some(stream.as_bytes()));
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/main"], None);
    repo
}

/// A bare repository under `root` whose `main` holds one directory `wide/` of `files` files
/// (`f0000000`, ...; one blob) and a file `top`, made by git itself.
pub fn wide_repo(root: &Path, files: usize) -> PathBuf {
    let repo = root.join("wide.git");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "--bare"], None);
    let mut stream =
        b"blob\nmark :1\ndata 2\nx\n\ncommit refs/heads/main\ncommitter t <t@t> 0 +0000\ndata 5\nwide\n".to_vec();
    for i in 0..files {
        stream.extend_from_slice(format!("M 100644 :1 wide/f{i:07}\n").as_bytes());
    }
    stream.extend_from_slice(b"M 100644 :1 top\n\n");
    git(&repo, &["fast-import", "--quiet"], Some(&stream));
    git(&repo, &["symbolic-ref", "HEAD", "refs/heads/main"], None);
    repo
}
