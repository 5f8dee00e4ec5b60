use aether_core::{Engine, EngineConfig, SessionId, WriteOptions};
use tempfile::TempDir;

pub struct TestEngine {
    pub engine: Engine,
    pub dir: TempDir,
}

impl std::ops::Deref for TestEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

pub fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig::new(dir.join("data"))
}

pub async fn engine() -> TestEngine {
    engine_with(|_| {}).await
}

/// An engine whose large-file threshold and chunk sizes are small enough for tests.
pub async fn small_chunk_engine() -> TestEngine {
    engine_with(small_chunks).await
}

pub fn small_chunks(c: &mut EngineConfig) {
    c.large_file_threshold = 4096;
    c.chunking = aether_core::ChunkingConfig {
        min: 256,
        avg: 1024,
        max: 4096,
    };
}

pub async fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> TestEngine {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    f(&mut cfg);
    let engine = Engine::open(cfg).await.expect("open engine");
    TestEngine { engine, dir }
}

pub async fn empty_session(e: &Engine) -> SessionId {
    e.create_session(aether_core::SessionSource::Empty, Default::default())
        .await
        .expect("create")
        .id
}

pub async fn put(e: &Engine, id: &SessionId, path: &str, data: &[u8]) {
    e.write_bytes(
        id,
        path,
        data.to_vec(),
        WriteOptions {
            create_parents: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|err| panic!("write {path}: {err}"));
}

pub async fn get(e: &Engine, id: &SessionId, path: &str) -> Vec<u8> {
    e.read(id, path, 0, None, None)
        .await
        .unwrap_or_else(|err| panic!("read {path}: {err}"))
}

/// Deterministic pseudo-random bytes (xorshift), so chunking sees realistic content.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Run the real git in `dir`, isolated from the host's configuration.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "core.autocrlf=false",
            "-c",
            "gc.auto=0",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new session whose base is the git tree `tree` (already in the object database), made the
/// way a git import makes one: a commit of it, then the session at that commit.
pub async fn session_at_tree(e: &Engine, tree: gix::ObjectId) -> SessionId {
    let commit = e.objects().odb.write_commit(tree, &[], "base\n", None, 0).unwrap();
    let history = aether_core::ImportedHistory {
        base: commit,
        refs: Vec::new(),
        branch: None,
        source: serde_json::json!({}),
    };
    e.begin_import()
        .finish(history, Default::default())
        .await
        .unwrap_or_else(|err| panic!("session at {tree}: {err}"))
        .id
}

/// The engine's object database opened on its own with gix, to write objects the engine
/// would never write itself (hand-made, hostile trees).
pub fn raw_odb(e: &Engine) -> gix::Repository {
    gix::open_opts(e.objects().odb.git_dir(), gix::open::Options::isolated()).unwrap()
}

/// Write a tree object from raw entries `(mode, name bytes, id)`, in the order given and
/// without any check, as a hostile repository could hold it.
pub fn raw_tree(repo: &gix::Repository, entries: &[(&str, &[u8], gix::ObjectId)]) -> gix::ObjectId {
    use gix::objs::Write;
    let mut bytes = Vec::new();
    for (mode, name, oid) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        bytes.extend_from_slice(oid.as_bytes());
    }
    repo.objects.write_buf(gix::objs::Kind::Tree, &bytes).unwrap()
}

pub fn raw_blob(repo: &gix::Repository, data: &[u8]) -> gix::ObjectId {
    repo.write_blob(data).unwrap().detach()
}
