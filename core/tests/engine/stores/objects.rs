//! Conformance of [`ObjectStore`] implementations.

use std::sync::Arc;

use aether_core::object_store::{ObjectStore, TreeEdit};
use aether_core::odb::Odb;
use aether_core::{ErrorKind, Identity, ObjectId};
use gix::objs::tree::EntryKind;

use super::{KeepAlive, OBJECTS};

pub fn local() -> (Arc<dyn ObjectStore>, KeepAlive) {
    let dir = tempfile::tempdir().unwrap();
    let odb = Odb::open_or_init(&dir.path().join("objects.git"), Identity::default()).unwrap();
    (Arc::new(odb), Box::new(dir))
}

/// The contract of a git object store, for one implementation.
pub fn object_store_suite(name: &str, make: fn() -> (Arc<dyn ObjectStore>, KeepAlive)) {
    let (store, _keep) = make();
    assert!(store.git_dir().is_dir(), "{name}: a local git directory");
    let blob = store.write_blob(b"hello\n").unwrap();
    assert_eq!(
        blob.to_string(),
        "ce013625030ba8dba906f756967f9e9ca394464a",
        "{name}: git's blob id"
    );
    assert_eq!(
        store.write_blob(b"hello\n").unwrap(),
        blob,
        "{name}: same bytes, same id"
    );
    assert!(store.contains(&blob));
    assert_eq!(store.header(&blob).unwrap(), Some((gix::objs::Kind::Blob, 6)), "{name}");
    assert_eq!(store.read_blob(&blob).unwrap(), b"hello\n");
    let absent = ObjectId::from_bytes_or_panic(&[9; 20]);
    assert!(!store.contains(&absent));
    assert_eq!(store.header(&absent).unwrap(), None);
    assert_eq!(
        store.read_blob(&absent).unwrap_err().kind(),
        ErrorKind::NotFound,
        "{name}"
    );
    assert_eq!(
        store.read_tree(&absent).unwrap_err().kind(),
        ErrorKind::NotFound,
        "{name}"
    );

    let edits = [
        TreeEdit::Upsert {
            path: "a/b.txt".into(),
            kind: EntryKind::Blob,
            oid: blob,
        },
        TreeEdit::Upsert {
            path: "c".into(),
            kind: EntryKind::BlobExecutable,
            oid: blob,
        },
    ];
    let tree = store.edit_tree(store.empty_tree(), &edits).unwrap();
    let root = store.read_tree(&tree).unwrap();
    let names: Vec<_> = root.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "c"], "{name}");
    assert_eq!(root.get("c").unwrap().kind, EntryKind::BlobExecutable);
    let removed = store
        .edit_tree(tree, &[TreeEdit::Remove { path: "a/b.txt".into() }])
        .unwrap();
    let names: Vec<_> = store
        .read_tree(&removed)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["c"], "{name}: an emptied directory disappears");
    let bad = [TreeEdit::Remove { path: "a/../b".into() }];
    assert_eq!(
        store.edit_tree(tree, &bad).unwrap_err().kind(),
        ErrorKind::InvalidPath,
        "{name}"
    );

    let author = Identity {
        name: "A U Thor".into(),
        email: "a@example.com".into(),
    };
    let commit = store
        .write_commit(tree, &[], "first\n", Some(&author), 1_700_000_000)
        .unwrap();
    let info = store.read_commit(&commit).unwrap();
    assert_eq!((info.tree, info.message.as_str()), (tree, "first\n"), "{name}");
    assert_eq!(
        (info.author.name.as_str(), info.author.time),
        ("A U Thor", 1_700_000_000)
    );
    assert_eq!(
        store.commit_tree_and_spelling(&commit).unwrap(),
        (tree, true),
        "{name}: the engine's own commit"
    );
    assert_eq!(store.read_commit(&blob).unwrap_err().kind(), ErrorKind::NotFound);

    assert_eq!(store.find_ref("refs/heads/main").unwrap(), None);
    store
        .set_ref("refs/aether/sessions/s/heads/main", commit, "test")
        .unwrap();
    store
        .set_ref("refs/aether/sessions/s/checkpoints/1", commit, "test")
        .unwrap();
    store
        .set_ref("refs/aether/sessions/t/heads/main", commit, "test")
        .unwrap();
    assert_eq!(
        store.find_ref("refs/aether/sessions/s/heads/main").unwrap(),
        Some(commit)
    );
    let listed = store.list_refs("refs/aether/sessions/s/").unwrap();
    assert_eq!(listed.len(), 2, "{name}: {listed:?}");
    store.delete_refs("refs/aether/sessions/s/").unwrap();
    assert!(store.list_refs("refs/aether/sessions/s/").unwrap().is_empty(), "{name}");
    assert_eq!(
        store.list_refs("refs/aether/sessions/t/").unwrap().len(),
        1,
        "{name}: other refs stay"
    );
    assert_eq!(
        store.set_ref("refs/bad..name", commit, "x").unwrap_err().kind(),
        ErrorKind::InvalidArgument,
        "{name}"
    );
}

#[test]
fn object_stores_conform() {
    for (name, make) in OBJECTS {
        object_store_suite(name, *make);
    }
}
