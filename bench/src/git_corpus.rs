//! The corpus as a git repository, for the git benchmarks: a bare repository whose first commit
//! holds the whole corpus tree, followed by a few commits that each change [`EDITED_FILES`]
//! files, then `git gc` so that git serves it as it serves any maintained repository (one pack
//! with deltas, a commit-graph, a reachability bitmap). Built once per corpus and cached next to
//! it (`<corpus>/repo-v1.git`), in a `.partial` directory renamed into place when complete.
//!
//! Also the edits both sides of `git-fetch-incremental` make: the same new file contents
//! committed with plumbing on the reference side (no work tree) and written over HTTP on ours.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::corpus::Corpus;
use crate::fixture::command::{git, run};

/// Files each history commit (and each round of `git-fetch-incremental`) changes.
pub const EDITED_FILES: usize = 10;
/// Commits after the first; with the first, the repository's history.
const HISTORY: usize = 3;
/// Bump when the recipe changes, so an old cache is not used.
const CACHE_NAME: &str = "repo-v1.git";
/// Author and committer dates are pinned so the same corpus gives the same commit ids.
const EPOCH: i64 = 1_704_067_200;

/// What the cached repository holds, stored next to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoSummary {
    pub head: String,
    pub tree: String,
    pub commits: usize,
    pub pack_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct CorpusRepo {
    /// The bare repository (branch `main`). Never written to after it is built: whoever needs
    /// to commit works on a [`copy`].
    pub path: PathBuf,
    pub summary: RepoSummary,
}

/// `git --git-dir DIR ...`, isolated from the host's configuration (see [`git`]).
pub fn git_dir(dir: &Path) -> Command {
    let mut c = git(dir);
    c.env("GIT_DIR", dir);
    c
}

impl CorpusRepo {
    /// The cached repository of `corpus`, built now if missing (`scratch` is for the build).
    pub fn prepare(corpus: &Corpus, scratch: &Path) -> Result<CorpusRepo> {
        let home = corpus.tree.parent().context("the corpus tree has no parent")?;
        let home = &std::fs::canonicalize(home).with_context(|| format!("resolving {}", home.display()))?;
        let path = home.join(CACHE_NAME);
        let meta = home.join(format!("{CACHE_NAME}.json"));
        if !meta.is_file() {
            let partial = home.join(format!("{CACHE_NAME}.partial"));
            crate::ctx::remove(&partial)?;
            crate::ctx::remove(&path)?;
            eprintln!("git corpus: building the corpus repository in {}", path.display());
            let t = Instant::now();
            let summary = build(corpus, &partial, scratch)?;
            std::fs::rename(&partial, &path).with_context(|| format!("renaming {}", partial.display()))?;
            let text = serde_json::to_string_pretty(&summary).context("serializing the repository summary")?;
            std::fs::write(&meta, text).with_context(|| format!("writing {}", meta.display()))?;
            eprintln!("git corpus: built in {:.1} s", t.elapsed().as_secs_f64());
        }
        let text = std::fs::read_to_string(&meta).with_context(|| format!("reading {}", meta.display()))?;
        let summary: RepoSummary =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", meta.display()))?;
        let head = run(git_dir(&path).args(["rev-parse", "refs/heads/main"]))?;
        ensure!(
            head == summary.head,
            "the cached repository {} moved (main at {head}, expected {}): remove it",
            path.display(),
            summary.head
        );
        Ok(CorpusRepo { path, summary })
    }

    /// A copy of the repository at `dst` whose files are hard links (git never writes into an
    /// existing object or pack file; refs are replaced by rename), made in a second.
    pub fn copy(&self, dst: &Path) -> Result<()> {
        crate::ctx::link_tree(&self.path, dst).map(drop)
    }
}

fn build(corpus: &Corpus, repo: &Path, scratch: &Path) -> Result<RepoSummary> {
    run(git(scratch).args(["init", "-q", "--bare", "-b", "main"]).arg(repo))?;
    // The first commit: the corpus tree, added from a hard-linked copy (git only reads it).
    let work = scratch.join("git-corpus-work");
    crate::ctx::remove(&work)?;
    crate::ctx::link_tree(&corpus.tree, &work)?;
    let t = Instant::now();
    run(git_dir(repo).env("GIT_WORK_TREE", &work).args(["add", "-A", "-f"]))?;
    run(dated(git_dir(repo).env("GIT_WORK_TREE", &work), 0).args(["commit", "-q", "-m", "corpus"]))?;
    crate::ctx::remove(&work)?;
    eprintln!("git corpus: add and commit took {:.1} s", t.elapsed().as_secs_f64());
    for k in 1..=HISTORY {
        let edits = edits_for(repo, &corpus.files, k as u64)?;
        commit_edits(repo, &edits, &format!("history {k}"), k as i64)?;
    }
    let t = Instant::now();
    // gc of a bare repository: one pack with deltas, a commit-graph and a bitmap.
    run(git_dir(repo).args(["gc", "-q"]))?;
    eprintln!("git corpus: git gc took {:.1} s", t.elapsed().as_secs_f64());
    let head = run(git_dir(repo).args(["rev-parse", "refs/heads/main"]))?;
    let tree = run(git_dir(repo).args(["rev-parse", "refs/heads/main^{tree}"]))?;
    let pack_bytes = crate::fixture::data::dir_size(&repo.join("objects").join("pack"))?;
    Ok(RepoSummary {
        head,
        tree,
        commits: HISTORY + 1,
        pack_bytes,
    })
}

/// Pin author and committer dates to [`EPOCH`] + `k` hours.
fn dated(cmd: &mut Command, k: i64) -> &mut Command {
    let date = format!("{} +0000", EPOCH + k * 3600);
    cmd.env("GIT_AUTHOR_DATE", &date).env("GIT_COMMITTER_DATE", &date)
}

/// One changed file: its path, mode in the tree and new content.
#[derive(Debug, Clone)]
pub struct Edit {
    pub path: String,
    pub mode: String,
    pub content: Vec<u8>,
}

/// `data` with one line inserted in the middle (after the first newline past half), like a small
/// code change; files without a newline get the line appended.
pub fn edited(data: &[u8], tag: &str) -> Vec<u8> {
    let line = format!("/* aether-bench edit {tag} */\n");
    let at = data[data.len() / 2..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(data.len(), |i| data.len() / 2 + i + 1);
    [&data[..at], line.as_bytes(), &data[at..]].concat()
}

/// [`EDITED_FILES`] regular files of `refs/heads/main` spread over the tree (a different set
/// for each `salt`), each with a line inserted in the middle.
pub fn edits_for(repo: &Path, files: &[String], salt: u64) -> Result<Vec<Edit>> {
    ensure!(files.len() >= EDITED_FILES, "the corpus has too few files");
    let step = files.len() / EDITED_FILES;
    let offset = (salt as usize * 7919) % step.max(1);
    let mut out = Vec::with_capacity(EDITED_FILES);
    for i in 0..EDITED_FILES {
        let path = &files[i * step + offset];
        let spec = format!("refs/heads/main:{path}");
        let listed = run(git_dir(repo).args(["ls-tree", "refs/heads/main", "--", path]))?;
        let mode = listed.split(' ').next().unwrap_or_default().to_owned();
        if mode != "100644" && mode != "100755" {
            bail!("{path} is not a regular file in the repository ({listed:?})");
        }
        let old = Command::new("git")
            .env("GIT_DIR", repo)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["cat-file", "blob", &spec])
            .output()
            .context("starting git cat-file")?;
        ensure!(old.status.success(), "git cat-file blob {spec} failed");
        out.push(Edit {
            path: path.clone(),
            mode,
            content: edited(&old.stdout, &salt.to_string()),
        });
    }
    Ok(out)
}

/// Commit `edits` on `refs/heads/main` of the bare repository `repo` with plumbing (a temporary
/// index, no work tree); returns the new commit's tree id.
pub fn commit_edits(repo: &Path, edits: &[Edit], message: &str, k: i64) -> Result<String> {
    let index = repo.join("aether-bench.index");
    let with_index = |c: &mut Command| {
        c.env("GIT_INDEX_FILE", &index);
    };
    let mut c = git_dir(repo);
    with_index(&mut c);
    run(c.args(["read-tree", "refs/heads/main"]))?;
    let mut info = String::new();
    for e in edits {
        let mut child = git_dir(repo)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting git hash-object")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("hash-object's stdin")?;
            stdin.write_all(&e.content).context("writing to git hash-object")?;
        }
        let out = child.wait_with_output().context("waiting for git hash-object")?;
        ensure!(out.status.success(), "git hash-object failed");
        let oid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        info.push_str(&format!("{} {oid}\t{}\n", e.mode, e.path));
    }
    let mut c = git_dir(repo);
    with_index(&mut c);
    let mut child = c
        .args(["update-index", "--index-info"])
        .stdin(Stdio::piped())
        .spawn()
        .context("starting git update-index")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("update-index's stdin")?;
        stdin
            .write_all(info.as_bytes())
            .context("writing to git update-index")?;
    }
    ensure!(
        child.wait().context("waiting for git update-index")?.success(),
        "git update-index failed"
    );
    let mut c = git_dir(repo);
    with_index(&mut c);
    let tree = run(c.arg("write-tree"))?;
    let commit =
        run(dated(&mut git_dir(repo), k).args(["commit-tree", &tree, "-p", "refs/heads/main", "-m", message]))?;
    run(git_dir(repo).args(["update-ref", "refs/heads/main", &commit]))?;
    std::fs::remove_file(&index).with_context(|| format!("removing {}", index.display()))?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::edited;

    #[test]
    fn an_edit_inserts_one_line_in_the_middle() {
        let data = b"one\ntwo\nthree\nfour\n";
        let out = edited(data, "7");
        assert_eq!(out, b"one\ntwo\nthree\n/* aether-bench edit 7 */\nfour\n");
        assert_eq!(edited(b"no newline", "x"), b"no newline/* aether-bench edit x */\n");
        assert_eq!(edited(b"", "x"), b"/* aether-bench edit x */\n");
    }
}
