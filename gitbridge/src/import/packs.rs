//! Objects from the quarantine into the engine's stores: blobs at or over the large-file
//! threshold are streamed into the chunk store under their git id, everything else goes to
//! `objects.git` as an indexed pack. Nothing is hashed one loose object at a time.
//!
//! Without large blobs the fetched pack (and its index, written by git while it arrived) is
//! moved as it is. With large blobs a filtered pack is written (`pack-objects --filter=
//! blob:limit=<threshold>`, which copies existing deltas) and indexed again, so large files are
//! stored once, chunked.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use aether_core::ObjectId;
use aether_core::objects::Objects;

use super::error::{ImportError, Result};
use super::git;

/// Blobs of at least `threshold` bytes in `repo`, with their sizes.
pub(crate) fn large_blobs(git_bin: &Path, repo: &Path, home: &Path, threshold: u64) -> Result<Vec<(ObjectId, u64)>> {
    let mut cmd = git::command(git_bin, Some(repo), home);
    cmd.args([
        "cat-file",
        "--batch-all-objects",
        "--unordered",
        "--batch-check=%(objecttype) %(objectname) %(objectsize)",
    ]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ImportError::io("running git cat-file"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ImportError::git("cat-file", "no stdout pipe"))?;
    let mut out = Vec::new();
    for line in BufReader::with_capacity(1 << 16, stdout).lines() {
        let line = line.map_err(ImportError::io("reading git cat-file"))?;
        let Some(rest) = line.strip_prefix("blob ") else {
            continue;
        };
        let parsed = rest
            .split_once(' ')
            .and_then(|(oid, size)| Some((ObjectId::from_hex(oid.as_bytes()).ok()?, size.parse::<u64>().ok()?)));
        let (oid, size) = parsed.ok_or_else(|| ImportError::git("cat-file", format!("unexpected line '{line}'")))?;
        if size >= threshold {
            out.push((oid, size));
        }
    }
    let result = child
        .wait_with_output()
        .map_err(ImportError::io("waiting for git cat-file"))?;
    if !result.status.success() {
        return Err(ImportError::git("cat-file", git::last_lines(&result.stderr, 3)));
    }
    Ok(out)
}

/// Stream each of `blobs` out of `repo` into the chunk store, verifying its id.
/// `report(done, total)` is called after each blob.
pub(crate) fn chunk_blobs(
    git_bin: &Path,
    repo: &Path,
    home: &Path,
    objects: &Objects,
    blobs: &[(ObjectId, u64)],
    max_file_size: u64,
    mut report: impl FnMut(usize, usize),
) -> Result<()> {
    let todo: Vec<&(ObjectId, u64)> = blobs
        .iter()
        .filter(|(oid, _)| !matches!(objects.manifest(oid), Ok(Some(_))))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let mut cmd = git::command(git_bin, Some(repo), home);
    cmd.args(["cat-file", "--batch"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ImportError::io("running git cat-file --batch"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ImportError::git("cat-file", "no stdin pipe"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ImportError::git("cat-file", "no stdout pipe"))?;
    let names: String = todo.iter().map(|(oid, _)| format!("{oid}\n")).collect();
    let result = std::thread::scope(|scope| {
        // A writer thread, so neither side blocks on a full pipe.
        scope.spawn(move || {
            let _ = stdin.write_all(names.as_bytes());
        });
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        for (i, (oid, size)) in todo.iter().enumerate() {
            let mut header = String::new();
            reader
                .read_line(&mut header)
                .map_err(ImportError::io("reading git cat-file --batch"))?;
            let expected = format!("{oid} blob {size}");
            if header.trim_end() != expected {
                return Err(ImportError::git(
                    "cat-file --batch",
                    format!("expected '{expected}', got '{}'", header.trim_end()),
                ));
            }
            objects.adopt_large_blob(oid, &mut (&mut reader).take(*size), *size, max_file_size)?;
            let mut newline = [0u8; 1];
            reader
                .read_exact(&mut newline)
                .map_err(ImportError::io("reading git cat-file --batch"))?;
            report(i + 1, todo.len());
        }
        Ok(())
    });
    let out = child
        .wait_with_output()
        .map_err(ImportError::io("waiting for git cat-file"))?;
    result?;
    if !out.status.success() {
        return Err(ImportError::git("cat-file --batch", git::last_lines(&out.stderr, 3)));
    }
    Ok(())
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Installed {
    /// The fetched pack was written again (filtered or consolidated) rather than moved.
    pub repacked: bool,
}

fn packs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(ImportError::io(format!("listing {}", dir.display())))?;
    for e in entries {
        let p = e.map_err(ImportError::io(format!("listing {}", dir.display())))?.path();
        if p.extension().is_some_and(|x| x == "pack") && p.with_extension("idx").exists() {
            out.push(p);
        }
    }
    Ok(out)
}

fn loose_objects(git_bin: &Path, repo: &Path, home: &Path) -> Result<u64> {
    let mut cmd = git::command(git_bin, Some(repo), home);
    cmd.args(["count-objects", "-v"]);
    let out = git::run(cmd, "count-objects")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("count: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}

/// Put every object of the quarantine `repo` (except blobs of at least `filter` bytes) into
/// the pack directory `dest` as one indexed pack. `scratch` is an empty directory to work in.
pub(crate) fn install(
    git_bin: &Path,
    repo: &Path,
    home: &Path,
    scratch: &Path,
    dest: &Path,
    filter: Option<u64>,
) -> Result<Installed> {
    let fetched = packs_in(&repo.join("objects/pack"))?;
    if filter.is_none() && fetched.len() == 1 && loose_objects(git_bin, repo, home)? == 0 {
        move_pack(&fetched[0], dest)?;
        return Ok(Installed { repacked: false });
    }
    // Repack into a scratch repository: pack-objects streams (reusing existing deltas) into
    // index-pack, which writes the pack and its index there.
    let out_repo = scratch.join("out.git");
    let mut init = git::command(git_bin, None, home);
    init.args(["init", "-q", "--bare"]).arg(&out_repo);
    git::run(init, "init")?;
    let mut pack = git::command(git_bin, Some(repo), home);
    pack.args([
        "pack-objects",
        "--revs",
        "--all",
        "--stdout",
        "--delta-base-offset",
        "-q",
    ]);
    if let Some(limit) = filter {
        pack.arg(format!("--filter=blob:limit={limit}"));
    }
    let mut packer = pack
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ImportError::io("running git pack-objects"))?;
    let pack_out = packer
        .stdout
        .take()
        .ok_or_else(|| ImportError::git("pack-objects", "no stdout pipe"))?;
    let mut index = git::command(git_bin, Some(&out_repo), home);
    index.args(["index-pack", "--stdin"]);
    let indexed = index
        .stdin(Stdio::from(pack_out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(ImportError::io("running git index-pack"))?;
    let packed = packer
        .wait_with_output()
        .map_err(ImportError::io("waiting for git pack-objects"))?;
    if !packed.status.success() {
        return Err(ImportError::git("pack-objects", git::last_lines(&packed.stderr, 3)));
    }
    if !indexed.status.success() {
        return Err(ImportError::git("index-pack", git::last_lines(&indexed.stderr, 3)));
    }
    for p in packs_in(&out_repo.join("objects/pack"))? {
        move_pack(&p, dest)?;
    }
    Ok(Installed { repacked: true })
}

/// Move `pack` with its `.rev` and `.idx` into `dest`, the index last (a pack is found through
/// its index, so it is never seen half there), then make the directory entries durable.
fn move_pack(pack: &Path, dest: &Path) -> Result<()> {
    let name = |ext: &str| pack.with_extension(ext);
    let Some(file_name) = pack.file_name() else {
        return Err(ImportError::git("pack-objects", "pack without a name"));
    };
    let target = dest.join(file_name);
    if target.with_extension("idx").exists() {
        // Pack names are their content's checksum: this exact pack is installed already.
        return Ok(());
    }
    std::fs::create_dir_all(dest).map_err(ImportError::io(format!("creating {}", dest.display())))?;
    for ext in ["pack", "rev", "idx"] {
        let from = name(ext);
        if !from.exists() {
            continue;
        }
        let to = target.with_extension(ext);
        if std::fs::rename(&from, &to).is_err() {
            // Another file system: copy, and make the copy durable before it becomes visible.
            let tmp = dest.join(format!(
                ".tmp-import-{}",
                to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
            std::fs::copy(&from, &tmp).map_err(ImportError::io(format!("copying {}", from.display())))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(ImportError::io(format!("syncing {}", tmp.display())))?;
            std::fs::rename(&tmp, &to).map_err(ImportError::io(format!("installing {}", to.display())))?;
        }
    }
    std::fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(ImportError::io(format!("syncing {}", dest.display())))
}
