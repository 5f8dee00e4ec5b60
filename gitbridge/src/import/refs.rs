//! The quarantine's refs and the commit the session starts from: the ref the request names
//! (branch, tag, full ref name or commit id) or else the source's HEAD.

use std::path::Path;

use aether_core::ObjectId;

use super::error::{ImportError, Result};
use super::git;
use super::source::SourceUrl;

/// What the session is built from.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub base: ObjectId,
    /// Refs relative to `refs/` (`heads/main`, `tags/v1`), with their unpeeled targets.
    pub refs: Vec<(String, ObjectId)>,
    /// The branch `base` was named by, if any.
    pub branch: Option<String>,
    /// The full ref name `base` came from (`HEAD` resolved), if any.
    pub from_ref: Option<String>,
}

fn parse_oid(s: &str) -> Result<ObjectId> {
    ObjectId::from_hex(s.trim().as_bytes())
        .map_err(|_| ImportError::git("for-each-ref", format!("bad object id '{s}'")))
}

fn list_refs(git_bin: &Path, repo: &Path, home: &Path) -> Result<Vec<(String, ObjectId)>> {
    let mut cmd = git::command(git_bin, Some(repo), home);
    cmd.args([
        "for-each-ref",
        "--format=%(objectname) %(refname)",
        "refs/heads/",
        "refs/tags/",
    ]);
    let out = git::run(cmd, "for-each-ref")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut refs = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (oid, name) = line
            .split_once(' ')
            .ok_or_else(|| ImportError::git("for-each-ref", format!("unexpected line '{line}'")))?;
        let name = name.strip_prefix("refs/").unwrap_or(name);
        refs.push((name.to_owned(), parse_oid(oid)?));
    }
    Ok(refs)
}

/// The commit `spec` (a full ref name from the quarantine, or an object id) peels to.
fn peel_commit(git_bin: &Path, repo: &Path, home: &Path, spec: &str) -> Result<Option<ObjectId>> {
    let mut cmd = git::command(git_bin, Some(repo), home);
    cmd.args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{spec}^{{commit}}"));
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(ImportError::io("running git rev-parse"))?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(parse_oid(&String::from_utf8_lossy(&out.stdout))?))
}

/// Resolve the base commit of the import in the quarantine `repo`.
pub(crate) fn resolve(
    git_bin: &Path,
    repo: &Path,
    home: &Path,
    url: &SourceUrl,
    rev: Option<&str>,
) -> Result<Resolved> {
    let refs = list_refs(git_bin, repo, home)?;
    let not_a_commit =
        |name: &str| ImportError::InvalidSource(format!("ref '{name}' of {} does not point at a commit", url.display));
    let (full, base) = match rev {
        None => {
            let mut cmd = git::command(git_bin, Some(repo), home);
            cmd.args(["symbolic-ref", "-q", "HEAD"]);
            let head = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(ImportError::io("running git symbolic-ref"))?;
            let symbolic = String::from_utf8_lossy(&head.stdout).trim().to_owned();
            let symbolic = symbolic.strip_prefix("refs/").map(str::to_owned);
            match symbolic {
                Some(name) if refs.iter().any(|(n, _)| *n == name) => {
                    let full = format!("refs/{name}");
                    let base = peel_commit(git_bin, repo, home, &full)?.ok_or_else(|| not_a_commit(&full))?;
                    (Some(full), base)
                }
                _ => match peel_commit(git_bin, repo, home, "HEAD")? {
                    // A detached HEAD in the source.
                    Some(base) => (None, base),
                    None if refs.is_empty() => {
                        return Err(ImportError::NothingToImport(format!(
                            "{} has no branches or tags to import",
                            url.display
                        )));
                    }
                    None => {
                        return Err(ImportError::NothingToImport(format!(
                            "the HEAD of {} names a branch that does not exist; name a ref to import",
                            url.display
                        )));
                    }
                },
            }
        }
        Some(rev) => {
            let unknown = || ImportError::UnknownRef {
                url: url.display.clone(),
                rev: rev.to_owned(),
            };
            if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
                // The quarantine holds only what the source's refs reach, so any commit in it
                // is part of the imported history.
                let oid = ObjectId::from_hex(rev.as_bytes()).map_err(|_| unknown())?;
                let mut cmd = git::command(git_bin, Some(repo), home);
                cmd.args(["cat-file", "-t", "--end-of-options", rev]);
                let out = cmd
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(ImportError::io("running git cat-file"))?;
                match String::from_utf8_lossy(&out.stdout).trim() {
                    "commit" => (None, oid),
                    "" => return Err(unknown()),
                    _ => return Err(not_a_commit(rev)),
                }
            } else {
                let short = rev.strip_prefix("refs/");
                let candidates: Vec<String> = match short {
                    Some(s) => vec![s.to_owned()],
                    None => vec![format!("heads/{rev}"), format!("tags/{rev}")],
                };
                let name = candidates
                    .into_iter()
                    .find(|c| refs.iter().any(|(n, _)| n == c))
                    .ok_or_else(unknown)?;
                let full = format!("refs/{name}");
                let base = peel_commit(git_bin, repo, home, &full)?.ok_or_else(|| not_a_commit(&full))?;
                (Some(full), base)
            }
        }
    };
    let branch = full
        .as_deref()
        .and_then(|f| f.strip_prefix("refs/heads/"))
        .map(str::to_owned);
    Ok(Resolved {
        base,
        refs,
        branch,
        from_ref: full,
    })
}
