//! `aether fs ...`: files and the namespace of a session.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use aether_proto::v1 as pb;

use super::{mode, transfer};
use crate::Out;
use crate::args::{FsCmd, GetArgs, PutArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{self, print_json};
use crate::progress::Progress;

fn print_stat(s: &pb::Stat, out: Out) {
    if out.json {
        print_json(&output::stat_json(s));
    } else {
        outln!("{}", output::stat_human(s));
    }
}

pub async fn run(c: &Client, cmd: FsCmd, out: Out) -> Result<()> {
    let files = || c.files();
    let stat = match cmd {
        FsCmd::Ls(a) => {
            let req = pb::ListTreeRequest {
                session: a.session,
                path: a.path,
                recursive: a.recursive,
                at: a.at,
            };
            // Streamed (`WalkTree`), so a tree or a directory of any size lists; the server holds
            // a batch at a time whatever its size.
            let listing = {
                let mut stream = files().walk_tree(req).await.map_err(|s| c.err(s))?.into_inner();
                let mut listing = pb::Listing::default();
                while let Some(msg) = stream.message().await.map_err(|s| c.err(s))? {
                    listing.path = msg.path;
                    listing.entries.extend(msg.entries);
                }
                listing
            };
            if out.json {
                print_json(&serde_json::json!({
                    "path": listing.path,
                    "entries": listing.entries.iter().map(output::stat_json).collect::<Vec<_>>(),
                }));
            } else {
                let rows: Vec<Vec<String>> = listing
                    .entries
                    .iter()
                    .map(|e| {
                        let name = match &e.symlink_target {
                            Some(t) => format!("{} -> {t}", e.path),
                            None if e.kind == "dir" => format!("{}/", e.path),
                            None => e.path.clone(),
                        };
                        vec![
                            format!("{:o}", e.mode),
                            if e.kind == "dir" {
                                "-".into()
                            } else {
                                output::size(e.size)
                            },
                            output::time_s(e.mtime_ns.div_euclid(1_000_000_000)),
                            name,
                        ]
                    })
                    .collect();
                outln!("{}", output::table(&["MODE", "SIZE", "MODIFIED", "PATH"], &rows));
            }
            return Ok(());
        }
        FsCmd::Cat(a) => {
            let req = pb::ReadFileRequest {
                session: a.session,
                path: a.path,
                at: a.at,
                ..Default::default()
            };
            download(c, req, &PathBuf::from("-"), false, out).await?;
            return Ok(());
        }
        FsCmd::Put(a) => put(c, a, out).await?,
        FsCmd::Get(a) => return get(c, a, out).await,
        FsCmd::Rm(a) => {
            files()
                .delete_file(pb::DeleteFileRequest {
                    session: a.session,
                    path: a.path.clone(),
                    recursive: a.recursive,
                })
                .await
                .map_err(|s| c.err(s))?;
            if out.json {
                print_json(&serde_json::json!({"deleted": a.path}));
            } else {
                outln!("deleted {}", a.path);
            }
            return Ok(());
        }
        FsCmd::Mv(a) => files()
            .rename(pb::RenameRequest {
                session: a.session,
                from: a.from,
                to: a.to,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner(),
        FsCmd::Mkdir(a) => files()
            .mkdir(pb::MkdirRequest {
                session: a.session,
                path: a.path,
                parents: a.parents,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner(),
        FsCmd::Ln(a) => files()
            .symlink(pb::SymlinkRequest {
                session: a.session,
                path: a.path,
                target: a.target,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner(),
        FsCmd::Stat(a) => files()
            .stat(pb::StatRequest {
                session: a.session,
                path: a.path,
                at: a.at,
                content_id: None,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner(),
        FsCmd::Chmod(a) => files()
            .chmod(pb::ChmodRequest {
                session: a.session,
                path: a.path,
                mode: mode(&a.mode)?,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner(),
    };
    print_stat(&stat, out);
    Ok(())
}

async fn put(c: &Client, a: PutArgs, out: Out) -> Result<pb::Stat> {
    let (size, rx, progress) = transfer::read_pieces(&a.local, out, "upload")?;
    let head = pb::WriteFileRequest {
        session: a.session,
        path: a.path,
        mode: a.mode.as_deref().map(mode).transpose()?,
        no_parents: a.no_parents,
        size,
        offset: 0,
        mtime_ns: None,
        data: Vec::new(),
    };
    let (stream, failed) = transfer::messages(
        rx,
        progress,
        head,
        |m, data| m.data = data,
        |data| pb::WriteFileRequest {
            data,
            ..Default::default()
        },
    );
    let mut client = c.files();
    let call = async { Ok(client.write_file(stream).await.map_err(|s| c.err(s))?.into_inner()) };
    transfer::upload(call, failed).await
}

async fn get(c: &Client, a: GetArgs, out: Out) -> Result<()> {
    let local = match a.local {
        Some(l) => l,
        None => PathBuf::from(a.path.rsplit('/').next().filter(|n| !n.is_empty()).ok_or_else(|| {
            CliError::usage(format!("'{}' has no file name", a.path), "give the local file name too")
        })?),
    };
    let offset = if a.resume && local.as_os_str() != "-" {
        match tokio::fs::metadata(&local).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(CliError::io(format!("cannot read {}", local.display()), e)),
        }
    } else {
        0
    };
    let req = pb::ReadFileRequest {
        session: a.session,
        path: a.path,
        at: a.at,
        offset,
        length: None,
        content_id: None,
        opened: false,
    };
    let (stat, written) = download(c, req, &local, offset > 0, out).await?;
    if out.json {
        let mut v = output::stat_json(&stat);
        v["local"] = serde_json::json!(local.display().to_string());
        v["offset"] = serde_json::json!(offset);
        v["bytes"] = serde_json::json!(written);
        print_json(&v);
    } else if local.as_os_str() != "-" {
        let resumed = if offset > 0 {
            format!(", resumed at {offset}")
        } else {
            String::new()
        };
        outln!(
            "{} -> {} ({}{resumed})",
            stat.path,
            local.display(),
            output::size(stat.size)
        );
    }
    Ok(())
}

/// Stream a file into `local` (`-`: standard output); returns its stat and the bytes written.
async fn download(
    c: &Client,
    req: pb::ReadFileRequest,
    local: &std::path::Path,
    append: bool,
    out: Out,
) -> Result<(pb::Stat, u64)> {
    let start = req.offset;
    let mut stream = c.files().read_file(req).await.map_err(|s| c.err(s))?.into_inner();
    let mut sink = transfer::open_sink(local, append).await?;
    let mut stat = None;
    let mut progress: Option<Progress> = None;
    let mut written = 0u64;
    while let Some(m) = stream.message().await.map_err(|s| c.err(s))? {
        if let Some(s) = m.stat {
            let p = Progress::new(out, "download", Some(s.size));
            p.set(start);
            progress = Some(p);
            stat = Some(s);
        }
        sink.write_all(&m.data)
            .await
            .map_err(|e| CliError::io(format!("cannot write {}", local.display()), e))?;
        written += m.data.len() as u64;
        if let Some(p) = &progress {
            p.inc(m.data.len() as u64);
        }
    }
    sink.flush()
        .await
        .map_err(|e| CliError::io(format!("cannot write {}", local.display()), e))?;
    if let Some(p) = progress {
        p.finish();
    }
    let stat = stat.ok_or_else(|| CliError::new(crate::error::Kind::Other, "the server sent no file", "try again"))?;
    Ok((stat, written))
}
