//! `aether checkpoint ...`, `aether commit`, `aether log`.

use aether_proto::v1 as pb;

use crate::Out;
use crate::args::{CheckpointCmd, CommitArgs, LogArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{self, print_json};

fn print_checkpoint(cp: &pb::Checkpoint, out: Out) {
    if out.json {
        print_json(&output::checkpoint_json(cp));
    } else {
        outln!(
            "{}",
            output::fields(&[
                ("checkpoint", cp.number.to_string()),
                ("commit", cp.commit.clone()),
                ("ref", cp.r#ref.clone().unwrap_or_else(|| "-".into())),
                ("message", cp.message.clone()),
            ])
        );
    }
}

pub async fn checkpoint(c: &Client, cmd: CheckpointCmd, out: Out) -> Result<()> {
    match cmd {
        CheckpointCmd::Create(a) => {
            let cp = c
                .history()
                .create_checkpoint(pb::CreateCheckpointRequest {
                    session: a.session,
                    message: a.message,
                })
                .await
                .map_err(|s| c.err(s))?
                .into_inner();
            print_checkpoint(&cp, out);
        }
        CheckpointCmd::List(a) => {
            let list = c
                .history()
                .list_checkpoints(pb::ListCheckpointsRequest { session: a.session })
                .await
                .map_err(|s| c.err(s))?
                .into_inner();
            if out.json {
                print_json(&serde_json::json!({
                    "checkpoints": list.checkpoints.iter().map(output::checkpoint_json).collect::<Vec<_>>(),
                }));
            } else {
                let rows: Vec<Vec<String>> = list
                    .checkpoints
                    .iter()
                    .map(|cp| {
                        vec![
                            cp.number.to_string(),
                            cp.commit.chars().take(12).collect(),
                            output::time_ms(cp.created_at),
                            cp.message.lines().next().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                outln!("{}", output::table(&["N", "COMMIT", "CREATED", "MESSAGE"], &rows));
            }
        }
        CheckpointCmd::Restore(a) => {
            let r = c
                .history()
                .restore(pb::RestoreRequest {
                    session: a.session,
                    rev: a.rev.clone(),
                })
                .await
                .map_err(|s| c.err(s))?
                .into_inner();
            if out.json {
                print_json(&serde_json::json!({
                    "saved": r.saved.as_ref().map(output::checkpoint_json),
                    "restored_commit": r.restored_commit,
                    "tree": r.tree,
                }));
            } else {
                outln!("restored {} (commit {})", a.rev, r.restored_commit);
                if let Some(saved) = &r.saved {
                    outln!("the discarded state is checkpoint {}", saved.number);
                }
            }
        }
    }
    Ok(())
}

/// `Name <email>`.
fn person(raw: &str) -> Result<pb::Person> {
    let bad = || {
        CliError::usage(
            format!("'{raw}' is not 'Name <email>'"),
            "write --author \"Ada Lovelace <ada@example.com>\"",
        )
    };
    let (name, rest) = raw.split_once('<').ok_or_else(bad)?;
    let email = rest.strip_suffix('>').ok_or_else(bad)?;
    if name.trim().is_empty() || email.trim().is_empty() {
        return Err(bad());
    }
    Ok(pb::Person {
        name: name.trim().to_owned(),
        email: email.trim().to_owned(),
    })
}

pub async fn commit(c: &Client, a: CommitArgs, out: Out) -> Result<()> {
    let commit = c
        .history()
        .create_commit(pb::CreateCommitRequest {
            session: a.session,
            message: a.message,
            author: a.author.as_deref().map(person).transpose()?,
            branch: a.branch,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&output::commit_json(&commit));
    } else {
        outln!("{} {}", commit.id, commit.message.lines().next().unwrap_or(""));
    }
    Ok(())
}

pub async fn log(c: &Client, a: LogArgs, out: Out) -> Result<()> {
    let r = c
        .history()
        .log(pb::LogRequest {
            session: a.session,
            rev: a.rev,
            after: None,
            limit: a.limit,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&serde_json::json!({
            "commits": r.commits.iter().map(output::commit_json).collect::<Vec<_>>(),
            "next": r.next,
        }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = r
        .commits
        .iter()
        .map(|cm| {
            let author = cm.author.as_ref();
            vec![
                cm.id.chars().take(12).collect(),
                author.map(|a| output::time_s(a.time)).unwrap_or_default(),
                author.map(|a| a.name.clone()).unwrap_or_default(),
                cm.message.lines().next().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    outln!("{}", output::table(&["COMMIT", "DATE", "AUTHOR", "MESSAGE"], &rows));
    Ok(())
}
