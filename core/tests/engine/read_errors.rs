//! A read that fails keeps its cause: an object that is there but cannot be read is corrupt
//! (a 500 on every surface), never "not found" (a false 404 that tells a client the path is
//! gone).

use aether_core::{Engine, ErrorKind};

use crate::common::{config, empty_session, put};

fn loose_path(data: &std::path::Path, oid: &str) -> std::path::PathBuf {
    data.join("objects.git/objects").join(&oid[..2]).join(&oid[2..])
}

#[tokio::test]
async fn a_damaged_tree_is_corrupt_and_a_missing_one_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (id, commit, tree) = {
        let e = Engine::open(config(dir.path())).await.unwrap();
        let id = empty_session(&e).await;
        put(&e, &id, "d/f.txt", b"hello").await;
        let cp = e.checkpoint(&id, None).await.unwrap();
        (id, cp.checkpoint.commit.to_string(), cp.checkpoint.tree.to_string())
    };
    let object = loose_path(&dir.path().join("data"), &tree);
    assert!(object.exists(), "the checkpoint's tree is a loose object");
    // Damaged in place: the file is there, its bytes are not a zlib stream.
    std::fs::write(&object, b"not an object at all").unwrap();
    {
        let e = Engine::open(config(dir.path())).await.unwrap();
        let err = e.list(&id, "", false, Some(&commit)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        let err = e.read(&id, "d/f.txt", 0, None, Some(&commit)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
    // Gone: that is "not found", as before.
    std::fs::remove_file(&object).unwrap();
    let e = Engine::open(config(dir.path())).await.unwrap();
    let err = e.list(&id, "", false, Some(&commit)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
