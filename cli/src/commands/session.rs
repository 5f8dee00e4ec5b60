//! `aether session ...` and `aether import`.

use std::collections::BTreeSet;

use aether_proto::v1 as pb;
use pb::create_session_request::Source;

use super::{pairs, transfer};
use crate::Out;
use crate::args::{CreateArgs, ImportArgs, LabelsTags, ListArgs, SessionCmd, WatchArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{self, print_json};
use crate::progress::Progress;

fn print_session(s: &pb::Session, out: Out) {
    if out.json {
        print_json(&output::session_json(s));
    } else {
        outln!("{}", output::session_human(s));
    }
}

pub async fn run(c: &Client, cmd: SessionCmd, out: Out) -> Result<()> {
    match cmd {
        SessionCmd::Create(a) => create(c, a, out).await,
        SessionCmd::Watch(a) => watch(c, a, out).await,
        SessionCmd::List(a) => list(c, a, out).await,
        SessionCmd::Show(a) => {
            let s = c
                .sessions()
                .get_session(pb::GetSessionRequest { id: a.session })
                .await
                .map_err(|s| c.err(s))?;
            print_session(s.get_ref(), out);
            Ok(())
        }
        SessionCmd::Fork(a) => {
            let s = c
                .sessions()
                .fork_session(pb::ForkSessionRequest {
                    id: a.session,
                    at: a.at,
                    labels: pairs(&a.meta.labels)?.into_iter().collect(),
                    tags: a.meta.tags,
                })
                .await
                .map_err(|s| c.err(s))?;
            print_session(s.get_ref(), out);
            Ok(())
        }
        SessionCmd::Archive(a) => {
            let s = c
                .sessions()
                .archive_session(pb::GetSessionRequest { id: a.session })
                .await
                .map_err(|s| c.err(s))?;
            print_session(s.get_ref(), out);
            Ok(())
        }
        SessionCmd::Delete(a) => {
            c.sessions()
                .delete_session(pb::GetSessionRequest { id: a.session.clone() })
                .await
                .map_err(|s| c.err(s))?;
            if out.json {
                print_json(&serde_json::json!({"deleted": a.session}));
            } else {
                outln!("deleted session {}", a.session);
            }
            Ok(())
        }
        SessionCmd::Label(a) => {
            if a.set.is_empty() && a.remove.is_empty() {
                return Err(CliError::usage(
                    "nothing to change",
                    "give labels as KEY=VALUE and/or --remove KEY",
                ));
            }
            let s = c
                .sessions()
                .update_session(pb::UpdateSessionRequest {
                    id: a.session,
                    set_labels: pairs(&a.set)?.into_iter().collect(),
                    remove_labels: a.remove,
                    ..Default::default()
                })
                .await
                .map_err(|s| c.err(s))?;
            print_session(s.get_ref(), out);
            Ok(())
        }
        SessionCmd::Tag(a) => {
            let tags: BTreeSet<String> = if a.add.is_empty() && a.remove.is_empty() {
                a.tags.into_iter().collect()
            } else {
                let current = c
                    .sessions()
                    .get_session(pb::GetSessionRequest { id: a.session.clone() })
                    .await
                    .map_err(|s| c.err(s))?
                    .into_inner();
                let mut tags: BTreeSet<String> = current.tags.into_iter().collect();
                tags.extend(a.add);
                for t in &a.remove {
                    tags.remove(t);
                }
                tags
            };
            let s = c
                .sessions()
                .update_session(pb::UpdateSessionRequest {
                    id: a.session,
                    replace_tags: true,
                    tags: tags.into_iter().collect(),
                    ..Default::default()
                })
                .await
                .map_err(|s| c.err(s))?;
            print_session(s.get_ref(), out);
            Ok(())
        }
    }
}

async fn create(c: &Client, a: CreateArgs, out: Out) -> Result<()> {
    let labels = pairs(&a.meta.labels)?;
    let src = a.source;
    let s = if let Some(dir) = src.from_dir {
        let rx = transfer::tar_pieces(&dir)?;
        let progress = Progress::new(out, "upload", None);
        upload_tar(c, rx, progress, &a.meta).await?
    } else if let Some(tar) = src.from_tar {
        let (_, rx, progress) = transfer::read_pieces(&tar, out, "import")?;
        upload_tar(c, rx, progress, &a.meta).await?
    } else {
        let source = match (src.from_git, src.from_session) {
            (Some(url), _) => Some(Source::Git(pb::GitSource { url, r#ref: a.git_ref })),
            (None, Some(session)) => Some(Source::Session(pb::SessionSource { session, at: a.at })),
            (None, None) => None,
        };
        c.sessions()
            .create_session(pb::CreateSessionRequest {
                source,
                labels: labels.into_iter().collect(),
                tags: a.meta.tags,
                branch: a.branch,
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner()
    };
    print_session(&s, out);
    Ok(())
}

async fn upload_tar(
    c: &Client,
    rx: tokio::sync::mpsc::Receiver<transfer::Piece>,
    progress: Progress,
    meta: &LabelsTags,
) -> Result<pb::Session> {
    let head = pb::ImportTarRequest {
        labels: pairs(&meta.labels)?.into_iter().collect(),
        tags: meta.tags.clone(),
        data: Vec::new(),
    };
    let (stream, failed) = transfer::messages(
        rx,
        progress,
        head,
        |m, data| m.data = data,
        |data| pb::ImportTarRequest {
            data,
            ..Default::default()
        },
    );
    let mut client = c.sessions();
    let call = async { Ok(client.import_tar(stream).await.map_err(|s| c.err(s))?.into_inner()) };
    transfer::upload(call, failed).await
}

pub async fn import(c: &Client, a: ImportArgs, out: Out) -> Result<()> {
    let (_, rx, progress) = transfer::read_pieces(&a.archive, out, "import")?;
    let s = upload_tar(c, rx, progress, &a.meta).await?;
    print_session(&s, out);
    Ok(())
}

async fn list(c: &Client, a: ListArgs, out: Out) -> Result<()> {
    let r = c
        .sessions()
        .list_sessions(pb::ListSessionsRequest {
            labels: pairs(&a.labels)?.into_iter().collect(),
            state: a.state,
            limit: a.limit,
            after: None,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&serde_json::json!({
            "sessions": r.sessions.iter().map(output::session_json).collect::<Vec<_>>(),
            "next": r.next,
        }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = r
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.state.clone(),
                s.checkpoints.to_string(),
                output::time_ms(s.updated_at),
                output::or_dash(output::labels_text(s)),
                output::or_dash(s.tags.join(",")),
            ]
        })
        .collect();
    outln!(
        "{}",
        output::table(&["ID", "STATE", "CHECKPOINTS", "UPDATED", "LABELS", "TAGS"], &rows)
    );
    Ok(())
}

/// One line per event: JSON lines with `--json`, else `SEQ TIME KIND PATH DETAIL`.
async fn watch(c: &Client, a: WatchArgs, out: Out) -> Result<()> {
    let mut stream = c
        .sessions()
        .watch_events(pb::WatchEventsRequest {
            id: a.session,
            after_seq: a.after,
            from_now: false,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    let mut seen = 0u64;
    while a.limit.is_none_or(|l| seen < l) {
        let Some(e) = stream.message().await.map_err(|s| c.err(s))? else {
            break;
        };
        seen += 1;
        let detail: serde_json::Value = serde_json::from_str(&e.detail_json).unwrap_or(serde_json::Value::Null);
        let kind = name_of(e.kind().as_str_name(), "EVENT_KIND_");
        if out.json {
            let origin = e.origin.as_ref().map(|o| {
                serde_json::json!({
                    "surface": name_of(o.surface().as_str_name(), "SURFACE_"),
                    "principal": o.principal,
                    "mount": o.mount,
                })
            });
            outln!(
                "{}",
                serde_json::json!({"seq": e.seq, "session": e.session, "at": e.at, "kind": kind, "path": e.path, "origin": origin, "detail": detail})
            );
        } else {
            let detail = if detail.is_null() {
                String::new()
            } else {
                detail.to_string()
            };
            // Where from: `surface:principal`, and `@mount` for a mount's change.
            let origin = e.origin.as_ref().map_or_else(
                || "-".to_owned(),
                |o| {
                    let mount = o.mount.as_ref().map(|m| format!("@{m}")).unwrap_or_default();
                    format!(
                        "{}:{}{mount}",
                        name_of(o.surface().as_str_name(), "SURFACE_"),
                        o.principal
                    )
                },
            );
            outln!(
                "{}  {}  {:<10}  {}  {}  {}",
                e.seq,
                output::time_ms(e.at),
                kind,
                e.path.as_deref().unwrap_or("-"),
                origin,
                detail
            );
        }
    }
    Ok(())
}

/// A proto enum value's name as the REST API and the logs spell it: `EVENT_KIND_IMPORT_PROGRESS`
/// is `import_progress`.
fn name_of(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}
