//! Exports write what the session holds: link targets and names as bytes (pax records where a
//! field is too short), modes as stored, read from one state however the session changes
//! meanwhile; the real GNU tar extracts them exactly, and an import of the export is the same
//! session.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use aether_core::SessionId;

use crate::archive_import::{assert_tricky_directory, tricky_directory, tricky_links};
use crate::common::*;
use crate::tar_bytes;

/// Export `id` (plain tar) into memory.
async fn export(e: &TestEngine, id: &SessionId, at: Option<&str>) -> Vec<u8> {
    let path = e
        .dir
        .path()
        .join(format!("export-{}.tar", aether_core::SessionId::generate()));
    let file = std::fs::File::create(&path).unwrap();
    e.export_tar(id, at, false, file).await.unwrap();
    std::fs::read(&path).unwrap()
}

/// A session made through the API with the tricky links and the modes of a checked directory.
async fn tricky_session(e: &TestEngine) -> SessionId {
    let dir = e.dir.path().join("tricky");
    tricky_directory(&dir);
    e.create_session(aether_core::SessionSource::Directory(dir), Default::default())
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn export_writes_targets_names_and_modes_as_stored() {
    let e = engine().await;
    let id = tricky_session(&e).await;
    let long_name = format!("{}/file", "deep-directory-name".repeat(6));
    put(&e, &id, &long_name, b"long").await;
    // A symlink made through the API keeps its target as given too.
    e.symlink(&id, "api-link", "../.././x").await.unwrap();
    let bytes = export(&e, &id, None).await;

    let entries = tar_bytes::parse(&bytes);
    let find = |name: &str| {
        entries
            .iter()
            .find(|p| p.name == name.as_bytes())
            .unwrap_or_else(|| panic!("{name} not in the archive"))
    };
    for (name, target) in tricky_links() {
        let p = find(name);
        assert_eq!(p.typeflag, b'2', "{name}");
        assert_eq!(p.link, target, "{name}: the header's link name, raw");
        assert_eq!(p.pax, target.len() > 100, "{name}: a pax linkpath exactly when needed");
    }
    assert_eq!(find("api-link").link, b"../.././x");
    let long = find(&long_name);
    assert!(long.pax, "a name over 100 bytes goes in a pax path record");
    assert_eq!(long.data, b"long");
    for (name, mode, typeflag) in [
        ("m/600", 0o600, b'0'),
        ("m/444", 0o444, b'0'),
        ("m/4755", 0o4755, b'0'),
        ("m/private/", 0o700, b'5'),
        ("m/empty700/", 0o700, b'5'),
        (".git/refs/heads/", 0o755, b'5'),
    ] {
        let p = find(name);
        assert_eq!((p.mode, p.typeflag), (mode, typeflag), "{name}");
    }

    // GNU tar extracts exactly that.
    let out = e.dir.path().join("extracted");
    std::fs::create_dir_all(&out).unwrap();
    let archive = e.dir.path().join("export.tar");
    std::fs::write(&archive, &bytes).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xpf")
        .arg(&archive)
        .arg("-C")
        .arg(&out)
        .status()
        .expect("GNU tar must be installed to run this test");
    assert!(status.success());
    for (name, target) in tricky_links() {
        use std::os::unix::ffi::OsStrExt;
        let got = std::fs::read_link(out.join(name)).unwrap();
        assert_eq!(got.as_os_str().as_bytes(), &target[..], "{name} extracted by GNU tar");
    }
    for (name, mode) in [
        ("m/4755", 0o4755),
        ("m/444", 0o444),
        ("m/private", 0o700),
        ("m/empty700", 0o700),
    ] {
        let meta = std::fs::symlink_metadata(out.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name} extracted by GNU tar");
    }

    // Importing the export gives the same session back.
    let again = e
        .import_tar(std::io::Cursor::new(bytes), Default::default())
        .await
        .unwrap();
    assert_tricky_directory(&e, &again.id, "re-imported export").await;
    assert_eq!(again.base_tree, e.current_tree(&id).await.unwrap());
}

/// A writer that stops at its first write until released, so the session can change while an
/// export is under way.
struct Gate {
    started: Option<std::sync::mpsc::Sender<()>>,
    release: std::sync::mpsc::Receiver<()>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(started) = self.started.take() {
            started.send(()).unwrap();
            self.release.recv().unwrap();
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_reads_one_state_while_the_session_changes() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a-first", b"first").await;
    put(&e, &id, "changed", &noise(1, 10_000)).await;
    put(&e, &id, "gone", b"here when the export began").await;
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate {
        started: Some(started_tx),
        release: release_rx,
        out: out.clone(),
    };
    let engine = e.engine.clone();
    let sid = id.clone();
    let export = tokio::spawn(async move { engine.export_tar(&sid, None, false, gate).await });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    // The export has begun writing: change the session under it.
    e.delete(&id, "gone", false).await.unwrap();
    put(&e, &id, "changed", b"short now").await;
    put(&e, &id, "new", b"written after the export began").await;
    release_tx.send(()).unwrap();
    export.await.unwrap().expect("the export completes");

    let bytes = out.lock().unwrap().clone();
    let entries = tar_bytes::parse(&bytes);
    let names: Vec<&[u8]> = entries.iter().map(|p| p.name.as_slice()).collect();
    assert_eq!(
        names,
        [&b"a-first"[..], b"changed", b"gone"],
        "the state when the export began"
    );
    assert_eq!(entries[1].data, noise(1, 10_000), "not torn: the old content whole");
    assert_eq!(entries[2].data, b"here when the export began");
}

#[tokio::test]
async fn an_export_at_a_checkpoint_keeps_its_modes_and_empty_directories() {
    let e = engine().await;
    let id = tricky_session(&e).await;
    e.checkpoint(&id, None).await.unwrap();
    e.chmod(&id, "m/600", 0o644).await.unwrap();
    e.delete(&id, "m/empty700", false).await.unwrap();
    let entries = tar_bytes::parse(&export(&e, &id, Some("checkpoints/1")).await);
    let find = |name: &str| entries.iter().find(|p| p.name == name.as_bytes()).map(|p| p.mode);
    assert_eq!(find("m/600"), Some(0o600));
    assert_eq!(find("m/empty700/"), Some(0o700));
}
