//! The history fixture, an engine in a temporary directory, and git helpers.

use std::path::{Path, PathBuf};
use std::process::Command;

use aether_core::{Engine, EngineConfig, SessionRecord};
use aether_gitbridge::import::{GitSource, ImportConfig, ImportError, import_git};

pub struct TestEngine {
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

impl TestEngine {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn import(&self, url: &str, rev: Option<&str>) -> Result<SessionRecord, ImportError> {
        self.import_with(url, rev, &ImportConfig::default()).await
    }

    pub async fn import_with(
        &self,
        url: &str,
        rev: Option<&str>,
        cfg: &ImportConfig,
    ) -> Result<SessionRecord, ImportError> {
        let source = GitSource {
            url: url.to_owned(),
            rev: rev.map(str::to_owned),
        };
        import_git(&self.engine, &source, Default::default(), cfg).await
    }
}

/// An engine with the default 1 MiB large-file threshold (the fixture's asset is 1.5 MiB).
pub async fn engine() -> TestEngine {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path().join("data"))).await.unwrap();
    TestEngine { engine, dir }
}

/// Build `fixtures/make_history_repo.sh` into `dir/name`; returns the repository path.
pub fn history_repo(dir: &Path, name: &str, non_utf8: bool) -> PathBuf {
    let repo = dir.join(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make_history_repo.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&repo)
        .arg(if non_utf8 { "1" } else { "0" })
        .status()
        .expect("bash");
    assert!(status.success(), "fixture script failed");
    repo
}

/// Run git in `dir` isolated from the machine's configuration; stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git_bytes(dir, args)).unwrap().trim().to_owned()
}

pub fn git_bytes(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git")
        .status
        .success()
}
