//! Both sides of the git serving benchmarks, built once per run and shared: aetherd (a child
//! process) holding the corpus repository imported as a session, and `git http-backend` serving
//! a copy of the same repository, each behind its own [`CountingProxy`]. Importing gives the
//! session the repository's objects with the same deltas, so both servers start from the same
//! stored packs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;

use crate::ctx::Ctx;
use crate::fixture::command::git;
use crate::git_corpus::CorpusRepo;
use crate::git_http::{CountingProxy, HttpBackend};
use crate::server::{Server, client, fail};

pub struct GitServing {
    pub repo: CorpusRepo,
    pub aetherd: Server,
    pub session: String,
    pub ours: CountingProxy,
    /// The repository http-backend serves: a copy of [`GitServing::repo`] that benchmarks may
    /// commit to.
    pub reference_repo: PathBuf,
    pub reference: CountingProxy,
    // Dropped after the proxy in front of it.
    _backend: HttpBackend,
}

impl GitServing {
    /// The session's smart-HTTP URL through the proxy, with the admin token as basic-auth password.
    pub fn ours_url(&self) -> String {
        format!(
            "{}/git/{}",
            self.ours.base(Some(&format!("git:{}", self.aetherd.token))),
            self.session
        )
    }

    pub fn reference_url(&self) -> String {
        format!("{}/corpus.git", self.reference.base(None))
    }
}

/// `POST /v1/sessions` with a git source: the repository at `repo` imported as a new session.
/// Returns the session id, its head commit and the time the request took.
pub async fn import(server: &Server, repo: &Path) -> Result<(String, String, Duration)> {
    let client = client()?;
    let url = repo.to_str().context("a non-UTF-8 repository path")?;
    let t = Instant::now();
    let resp = client
        .post(server.url("/v1/sessions"))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"source": {"type": "git", "url": url}}))
        .send()
        .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(fail("importing the corpus repository", resp).await);
    }
    let took = t.elapsed();
    let created: serde_json::Value = resp.json().await?;
    let id = created["id"].as_str().context("no id in the new session")?.to_owned();
    let head = created["head"]
        .as_str()
        .context("no head in the new session")?
        .to_owned();
    Ok((id, head, took))
}

impl Ctx {
    /// The shared serving fixture, built now (an untimed import into a fresh aetherd) unless
    /// `git-import` left its last server.
    pub fn git_serving(&mut self) -> Result<Arc<GitServing>> {
        if let Some(g) = &self.git {
            return Ok(g.clone());
        }
        let repo = self.corpus_repo()?;
        let data_dir = self.dir("git-aetherd")?;
        let aetherd = Server::aetherd(&data_dir)?;
        let t = Instant::now();
        let (session, head, _) = self.rt.block_on(import(&aetherd, &repo.path))?;
        ensure!(
            head == repo.summary.head,
            "the imported session is at {head}, the repository at {}",
            repo.summary.head
        );
        eprintln!(
            "setup: imported the corpus repository into aetherd in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        self.keep_git_serving(repo, aetherd, session)
    }

    /// Make `aetherd` (holding `session`, imported from `repo`) one side of the shared fixture.
    pub fn keep_git_serving(&mut self, repo: CorpusRepo, aetherd: Server, session: String) -> Result<Arc<GitServing>> {
        let root = self.dir("git-reference")?;
        let reference_repo = root.join("corpus.git");
        repo.copy(&reference_repo)?;
        let addr: std::net::SocketAddr = aetherd
            .base
            .trim_start_matches("http://")
            .parse()
            .context("aetherd's address")?;
        let ours = CountingProxy::start(&self.rt, addr)?;
        let backend = HttpBackend::start(&self.rt, root)?;
        let reference = CountingProxy::start(&self.rt, backend.addr)?;
        let g = Arc::new(GitServing {
            repo,
            aetherd,
            session,
            ours,
            reference_repo,
            reference,
            _backend: backend,
        });
        self.git = Some(g.clone());
        Ok(g)
    }

    /// The corpus as a git repository (cached next to the corpus).
    pub fn corpus_repo(&mut self) -> Result<CorpusRepo> {
        let corpus = self.corpus()?;
        let scratch = self.dir("git-corpus-build")?;
        let repo = CorpusRepo::prepare(&corpus, &scratch)?;
        crate::ctx::remove(&scratch)?;
        Ok(repo)
    }
}

/// `git` for a client of the benchmarks: protocol v2, no prompts, quiet.
pub fn git_client(dir: &Path) -> std::process::Command {
    let mut c = git(dir);
    c.env("GIT_TERMINAL_PROMPT", "0").args(["-c", "protocol.version=2"]);
    c
}

/// `RssAnon` and `RssFile` of process `pid` now, in bytes: what VmRSS is made of (memory the
/// process allocated, and mapped files such as the object database's packs).
pub fn rss_parts(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = |key: &str| -> Result<u64> {
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .with_context(|| format!("no {key} in {path}"))?;
        let n = v.trim().trim_end_matches("kB").trim();
        Ok(n.parse::<u64>().with_context(|| format!("bad {key} '{n}' in {path}"))? * 1024)
    };
    Ok((kib("RssAnon:")?, kib("RssFile:")?))
}
