//! The POSIX edge-case scenario (`posix_scenario`) on a mount over the in-memory server and on a
//! local directory, compared line by line, and what the server holds afterwards.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use super::memory_backend::MemoryBackend;
use super::tests::mount;

#[test]
fn posix_edge_cases_match_a_local_directory() {
    let local = tempfile::tempdir().unwrap();
    let expected = super::posix_scenario::scenario(local.path());
    let m = mount(Arc::new(MemoryBackend::new()), Duration::from_secs(5));
    let got = super::posix_scenario::scenario(m.dir.path());
    let differences: Vec<_> = expected.iter().zip(&got).filter(|(e, g)| e != g).collect();
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(expected.len(), got.len());

    // Everything reaches the server once the queue drains: every entry the local directory
    // holds, with its kind, bytes, mode, owner and number of names.
    m.synced();
    let mut stack = vec![local.path().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let rel = entry
                .path()
                .strip_prefix(local.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            let kind = m
                .backend
                .kind(&rel)
                .unwrap_or_else(|| panic!("{rel} is not on the server"));
            assert_eq!(kind, kind_of(&meta), "{rel}");
            let owner = m.backend.owner(&rel).unwrap();
            assert_eq!(
                (owner.0.unwrap_or(0), owner.1.unwrap_or(0)),
                (meta.uid(), meta.gid()),
                "{rel}"
            );
            if !meta.is_dir() {
                assert_eq!(m.backend.names(&rel), Some(meta.nlink() as u32), "{rel}");
            }
            if meta.is_file() {
                let want = fs::read(entry.path()).unwrap();
                assert!(
                    m.backend.file(&rel).as_deref() == Some(&want[..]),
                    "{rel} differs on the server"
                );
                assert_eq!(m.backend.mode(&rel), Some(meta.mode() & 0o7777), "{rel}");
                files += 1;
            }
        }
    }
    assert!(files > 10, "the scenario leaves files behind: {files}");
    assert!(m.writeback.refused().is_empty(), "{:?}", m.writeback.refused());
}

/// The kind of entry `meta` describes.
fn kind_of(meta: &fs::Metadata) -> super::backend::EntryKind {
    use super::backend::EntryKind;
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    [
        (t.is_dir(), EntryKind::Dir),
        (t.is_symlink(), EntryKind::Symlink),
        (t.is_fifo(), EntryKind::Fifo),
        (t.is_socket(), EntryKind::Socket),
        (t.is_char_device(), EntryKind::CharDevice),
        (t.is_block_device(), EntryKind::BlockDevice),
    ]
    .into_iter()
    .find_map(|(is, k)| is.then_some(k))
    .unwrap_or(EntryKind::File)
}
