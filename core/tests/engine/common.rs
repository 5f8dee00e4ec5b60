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
