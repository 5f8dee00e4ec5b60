//! Imports from tar, tar.gz and a directory keep what went in: symlink targets as bytes,
//! every mode bit, empty directories, a nested `.git`, sparse files' bytes; an archive that
//! cannot be stored exactly (a bad gzip trailer, a truncated stream, bytes that are not names)
//! is refused and creates nothing; special files are left out and listed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use aether_core::{Engine, ErrorKind, FileKind, ListFilter, Page, SessionId, SessionRecord, SessionSource};

use crate::common::*;
use crate::tar_bytes::{self, Raw};

/// Symlink targets no normalisation may touch, by link name.
pub fn tricky_links() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("links/dotdot", b"../.././x".to_vec()),
        ("links/abs", b"//abs//path".to_vec()),
        ("links/dot", b"a/./b".to_vec()),
        ("links/slash", b"d/".to_vec()),
        ("links/subdot", b"subdir/.".to_vec()),
        ("links/inside", b"subdir//inside".to_vec()),
        ("links/dangling", b"no/such/file".to_vec()),
        ("links/long", [b"../".repeat(40), b"./far//target".to_vec()].concat()),
    ]
}

async fn import_bytes(e: &Engine, bytes: Vec<u8>) -> aether_core::Result<SessionRecord> {
    e.import_tar(std::io::Cursor::new(bytes), Default::default()).await
}

async fn session_count(e: &Engine) -> usize {
    e.list_sessions(
        &ListFilter::default(),
        &Page {
            limit: 1000,
            after: None,
        },
    )
    .await
    .unwrap()
    .len()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

async fn mode(e: &Engine, id: &SessionId, path: &str) -> u32 {
    e.stat(id, path, None)
        .await
        .unwrap_or_else(|err| panic!("stat {path}: {err}"))
        .mode
}

/// Check the links of [`tricky_links`] and the modes written by [`moded_entries`].
async fn assert_links_and_modes(e: &Engine, id: &SessionId, what: &str) {
    for (name, target) in tricky_links() {
        let got = e.readlink(id, name, None).await.unwrap();
        assert_eq!(got.as_bytes(), &target[..], "{what}: target of {name}");
        let stat = e.stat(id, name, None).await.unwrap();
        assert_eq!(stat.size, target.len() as u64, "{what}: size of {name}");
    }
    for (path, want) in [
        ("m/600", 0o600),
        ("m/444", 0o444),
        ("m/4755", 0o4755),
        ("m/644", 0o644),
        ("m/755", 0o755),
        ("m/private", 0o700),
        ("m/private/inner", 0o640),
        ("m/empty700", 0o700),
    ] {
        assert_eq!(mode(e, id, path).await, want, "{what}: mode of {path}");
    }
    let empty = e.stat(id, "m/empty700", None).await.unwrap();
    assert_eq!(empty.kind, FileKind::Dir, "{what}");
    assert!(e.list(id, "m/empty700", false, None).await.unwrap().is_empty());
    assert_eq!(e.read(id, "m/4755", 0, None, None).await.unwrap(), b"suid");
}

/// Files and directories with the modes [`assert_links_and_modes`] checks.
fn moded_entries() -> Vec<Raw<'static>> {
    vec![
        Raw::dir("m/", 0o755),
        Raw::file("m/600", 0o600, b"secret"),
        Raw::file("m/444", 0o444, b"read only"),
        Raw::file("m/4755", 0o4755, b"suid"),
        Raw::file("m/644", 0o644, b"plain"),
        Raw::file("m/755", 0o755, b"exec"),
        Raw::dir("m/private/", 0o700),
        Raw::file("m/private/inner", 0o640, b"in"),
        Raw::dir("m/empty700/", 0o700),
    ]
}

#[tokio::test]
async fn tar_and_tar_gz_keep_link_targets_as_bytes_and_every_mode_bit() {
    let e = engine().await;
    let links = tricky_links();
    let long_name = format!("{}/file", "deep-directory-name".repeat(6));
    let mut entries: Vec<Raw<'_>> = links.iter().map(|(n, t)| Raw::symlink(n, t)).collect();
    entries.extend(moded_entries());
    entries.push(Raw::file(&long_name, 0o644, b"long"));
    let archive = tar_bytes::build(&entries);
    for (what, bytes) in [("tar", archive.clone()), ("tar.gz", gzip(&archive))] {
        let s = import_bytes(&e, bytes).await.unwrap();
        assert_links_and_modes(&e, &s.id, what).await;
        assert_eq!(e.read(&s.id, &long_name, 0, None, None).await.unwrap(), b"long");
        // Modes survive a freeze: a fork sees them too.
        let fork = e
            .create_session(
                SessionSource::Session {
                    id: s.id.clone(),
                    at: None,
                },
                Default::default(),
            )
            .await
            .unwrap();
        assert_links_and_modes(&e, &fork.id, &format!("{what}, forked")).await;
    }
}

/// A tar.gz of one file, and where its gzip trailer (CRC32, then length) starts.
fn valid_tar_gz() -> (Vec<u8>, usize) {
    let data = noise(7, 200_000);
    let gz = gzip(&tar_bytes::build(&[Raw::file("f.bin", 0o644, &data)]));
    let trailer = gz.len() - 8;
    (gz, trailer)
}

#[tokio::test]
async fn a_gzip_stream_with_a_wrong_crc_or_length_or_cut_short_is_refused_and_creates_nothing() {
    let e = engine().await;
    let (good, trailer) = valid_tar_gz();
    let mut bad_crc = good.clone();
    bad_crc[trailer] ^= 0x01;
    let mut bad_len = good.clone();
    bad_len[trailer + 4] ^= 0x01;
    let cut_body = good[..good.len() / 2].to_vec();
    let cut_trailer = good[..good.len() - 3].to_vec();
    for (what, bytes) in [
        ("a flipped CRC byte", bad_crc),
        ("a wrong length", bad_len),
        ("a stream cut in the middle", cut_body),
        ("a stream cut in its trailer", cut_trailer),
    ] {
        let err = import_bytes(&e, bytes).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
        assert!(
            err.to_string().contains("gzip"),
            "{what}: the message names the problem: {err}"
        );
        assert_eq!(
            session_count(&e).await,
            0,
            "{what}: a refused archive creates no session"
        );
    }
    // The same stream, intact, imports.
    let s = import_bytes(&e, good).await.unwrap();
    assert_eq!(e.read(&s.id, "f.bin", 0, None, None).await.unwrap(), noise(7, 200_000));
}

#[tokio::test]
async fn a_truncated_or_concatenated_plain_tar_is_refused() {
    let e = engine().await;
    let data = noise(3, 50_000);
    let archive = tar_bytes::build(&[Raw::file("a", 0o644, &data), Raw::file("b", 0o644, b"b")]);
    let cut_in_data = archive[..20_000].to_vec();
    let no_end_blocks = archive[..archive.len() - 1024].to_vec();
    let concatenated = [archive.clone(), archive.clone()].concat();
    for (what, bytes, says) in [
        ("cut in a file's data", cut_in_data, "truncated"),
        ("without end-of-archive blocks", no_end_blocks, "truncated"),
        ("two archives in a row", concatenated, "concatenated"),
        ("an empty stream", Vec::new(), "truncated"),
        ("xz data", b"\xfd7zXZ\0rest of it".to_vec(), "xz"),
    ] {
        let err = import_bytes(&e, bytes).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{what}: {err}");
        assert!(err.to_string().contains(says), "{what}: {err}");
    }
    assert_eq!(session_count(&e).await, 0);
}

#[tokio::test]
async fn entries_that_are_not_names_targets_or_one_tree_are_refused() {
    let e = engine().await;
    let cases: Vec<(&str, Vec<Raw<'_>>)> = vec![
        ("a target that is not UTF-8", vec![Raw::symlink("l", b"caf\xe9")]),
        (
            "a name that is not UTF-8",
            vec![Raw {
                name: b"caf\xe9",
                typeflag: b'0',
                mode: 0o644,
                link: b"",
                data: b"x",
            }],
        ),
        (
            "a file below a file",
            vec![Raw::file("d", 0o644, b"1"), Raw::file("d/x", 0o644, b"2")],
        ),
        (
            "a file over a directory",
            vec![Raw::file("d/x", 0o644, b"1"), Raw::file("d", 0o644, b"2")],
        ),
        (
            "a directory over a file",
            vec![Raw::file("d", 0o644, b"1"), Raw::dir("d/", 0o755)],
        ),
        ("an escaping name", vec![Raw::file("../x", 0o644, b"1")]),
        (
            "a multi-volume continuation",
            vec![Raw {
                name: b"part",
                typeflag: b'M',
                mode: 0o644,
                link: b"",
                data: b"",
            }],
        ),
        ("an empty symlink target", vec![Raw::symlink("l", b"")]),
    ];
    for (what, entries) in cases {
        let err = import_bytes(&e, tar_bytes::build(&entries)).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidArgument | ErrorKind::InvalidPath),
            "{what}: {err}"
        );
    }
    assert_eq!(session_count(&e).await, 0);
    // A later entry of the same kind replaces an earlier one, as tar extraction does; a hard
    // link is the same content with the same mode.
    let s = import_bytes(
        &e,
        tar_bytes::build(&[
            Raw::file("f", 0o644, b"old"),
            Raw::file("f", 0o600, b"new"),
            Raw {
                name: b"g",
                typeflag: b'1',
                mode: 0o644,
                link: b"f",
                data: b"",
            },
        ]),
    )
    .await
    .unwrap();
    assert_eq!(e.read(&s.id, "f", 0, None, None).await.unwrap(), b"new");
    assert_eq!(e.read(&s.id, "g", 0, None, None).await.unwrap(), b"new");
    assert_eq!(mode(&e, &s.id, "g").await, 0o600);
}

async fn created_detail(e: &Engine, id: &SessionId) -> serde_json::Value {
    let events = e.events(id, 0, 100).await.unwrap();
    events
        .into_iter()
        .find(|ev| ev.kind.as_str() == "created")
        .expect("a created event")
        .detail
}

#[tokio::test]
async fn special_files_are_left_out_and_listed_in_the_created_event() {
    let e = engine().await;
    let raw = |name: &'static str, typeflag| Raw {
        name: name.as_bytes(),
        typeflag,
        mode: 0o644,
        link: b"",
        data: b"",
    };
    let s = import_bytes(
        &e,
        tar_bytes::build(&[
            Raw::file("kept", 0o644, b"k"),
            raw("dev/null", b'3'),
            raw("dev/sda", b'4'),
            raw("pipe", b'6'),
        ]),
    )
    .await
    .unwrap();
    let names: Vec<String> = e
        .list(&s.id, "", true, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.stat.path)
        .collect();
    assert_eq!(names, ["dev", "kept"], "special files are not stored");
    let detail = created_detail(&e, &s.id).await;
    assert_eq!(detail["skipped"], 3, "{detail}");
    let listed = detail["skipped_paths"].to_string();
    for p in ["dev/null (character device)", "dev/sda (block device)", "pipe (fifo)"] {
        assert!(listed.contains(p), "{p} in {listed}");
    }

    // The same from a directory: a fifo is left out and listed.
    let dir = e.dir.path().join("with-fifo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kept"), b"k").unwrap();
    let made = Command::new("mkfifo").arg(dir.join("pipe")).status().expect("mkfifo");
    assert!(made.success());
    let d = e
        .create_session(SessionSource::Directory(dir), Default::default())
        .await
        .unwrap();
    let detail = created_detail(&e, &d.id).await;
    assert_eq!(detail["skipped"], 1, "{detail}");
    assert!(detail["skipped_paths"].to_string().contains("pipe (fifo)"), "{detail}");
}

/// A directory holding the tricky links, the modes of [`moded_entries`] and a git checkout's
/// `.git`.
pub fn tricky_directory(root: &Path) {
    let set = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::create_dir_all(root.join("links")).unwrap();
    for (name, target) in tricky_links() {
        use std::os::unix::ffi::OsStrExt;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), root.join(name)).unwrap();
    }
    let m = root.join("m");
    std::fs::create_dir_all(m.join("private")).unwrap();
    std::fs::create_dir_all(m.join("empty700")).unwrap();
    for (name, mode, data) in [
        ("600", 0o600, &b"secret"[..]),
        ("444", 0o444, b"read only"),
        ("4755", 0o4755, b"suid"),
        ("644", 0o644, b"plain"),
        ("755", 0o755, b"exec"),
        ("private/inner", 0o640, b"in"),
    ] {
        std::fs::write(m.join(name), data).unwrap();
        set(&m.join(name), mode);
    }
    set(&m, 0o755);
    set(&m.join("private"), 0o700);
    set(&m.join("empty700"), 0o700);
    let git = root.join(".git");
    std::fs::create_dir_all(git.join("refs/heads")).unwrap();
    std::fs::write(git.join("HEAD"), b"ref: refs/heads/main\n").unwrap();
}

/// Check what [`tricky_directory`] made, as a session.
pub async fn assert_tricky_directory(e: &Engine, id: &SessionId, what: &str) {
    assert_links_and_modes(e, id, what).await;
    assert_eq!(
        e.read(id, ".git/HEAD", 0, None, None).await.unwrap(),
        b"ref: refs/heads/main\n",
        "{what}: the nested repository is kept"
    );
    assert_eq!(
        e.stat(id, ".git/refs/heads", None).await.unwrap().kind,
        FileKind::Dir,
        "{what}"
    );
}

#[tokio::test]
async fn a_directory_import_keeps_targets_modes_empty_dirs_and_a_nested_git() {
    let e = engine().await;
    let dir = e.dir.path().join("checkout");
    tricky_directory(&dir);
    let s = e
        .create_session(SessionSource::Directory(dir), Default::default())
        .await
        .unwrap();
    assert_tricky_directory(&e, &s.id, "directory").await;
}

/// A file with data at scattered offsets and holes between them (more segments than an old GNU
/// header holds, so extension blocks are needed too), and its bytes.
fn sparse_file(path: &Path) -> Vec<u8> {
    let size = 3 << 20;
    let mut expected = vec![0u8; size];
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size as u64).unwrap();
    use std::os::unix::fs::FileExt;
    for i in 0..12u64 {
        let at = (i * 250_000 + 4_097 * i) as usize;
        let data = format!("segment {i} at {at}").into_bytes();
        f.write_all_at(&data, at as u64).unwrap();
        expected[at..at + data.len()].copy_from_slice(&data);
    }
    let tail = b"the last bytes";
    f.write_all_at(tail, (size - tail.len()) as u64).unwrap();
    expected[size - tail.len()..].copy_from_slice(tail);
    expected
}

#[tokio::test]
async fn sparse_files_from_gnu_tar_import_with_their_exact_bytes() {
    let e = engine().await;
    let work = e.dir.path().join("sparse");
    std::fs::create_dir_all(work.join("src")).unwrap();
    let expected = sparse_file(&work.join("src/sp.bin"));
    let formats: &[&[&str]] = &[
        &["--format=gnu"],
        &["--format=oldgnu"],
        &["--format=pax", "--sparse-version=0.0"],
        &["--format=pax", "--sparse-version=0.1"],
        &["--format=pax", "--sparse-version=1.0"],
    ];
    for (i, format) in formats.iter().enumerate() {
        let archive = work.join(format!("{i}.tar"));
        let out = Command::new("tar")
            .args(*format)
            .arg("-S")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(work.join("src"))
            .arg("sp.bin")
            .output()
            .expect("GNU tar must be installed to run this test");
        assert!(
            out.status.success(),
            "tar {format:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&archive).unwrap();
        assert!(
            bytes.len() < expected.len() / 4,
            "tar {format:?} stored the file sparse ({} bytes)",
            bytes.len()
        );
        let s = import_bytes(&e, bytes)
            .await
            .unwrap_or_else(|err| panic!("{format:?}: {err}"));
        let names: Vec<String> = e
            .list(&s.id, "", true, None)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.stat.path)
            .collect();
        assert_eq!(names, ["sp.bin"], "{format:?}: stored under its own name");
        let got = e.read(&s.id, "sp.bin", 0, None, None).await.unwrap();
        assert!(
            got == expected,
            "{format:?}: the bytes differ ({} of {})",
            got.len(),
            expected.len()
        );
    }
}
