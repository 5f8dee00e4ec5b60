//! `aether session ...` and `aether import`.

use std::collections::BTreeSet;

use aether_proto::v1 as pb;
use pb::create_session_request::Source;

use super::{pairs, transfer};
use crate::Out;
use crate::args::{ActivityArgs, CreateArgs, ImportArgs, LabelsTags, ListArgs, QuotaArgs, SessionCmd, WatchArgs};
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
        SessionCmd::Usage(a) => super::limits::session(c, a, out).await,
        SessionCmd::Quota(a) => super::limits::set_quota(c, a, out).await,
        SessionCmd::Retention(a) => super::limits::set_retention(c, a, out).await,
        SessionCmd::Watch(a) => watch(c, a, out).await,
        SessionCmd::Health(a) => super::observe::health(c, a, out).await,
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
                    quota: super::limits::quota(&a.quota),
                    retention: super::limits::retention(&a.retention),
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
        upload_tar(c, rx, progress, &a.meta, &a.quota).await?
    } else if let Some(tar) = src.from_tar {
        let (_, rx, progress) = transfer::read_pieces(&tar, out, "import")?;
        upload_tar(c, rx, progress, &a.meta, &a.quota).await?
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
                quota: super::limits::quota(&a.quota),
                retention: super::limits::retention(&a.retention),
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
    quota: &QuotaArgs,
) -> Result<pb::Session> {
    let head = pb::ImportTarRequest {
        labels: pairs(&meta.labels)?.into_iter().collect(),
        tags: meta.tags.clone(),
        data: Vec::new(),
        quota: super::limits::quota(quota),
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
    let s = upload_tar(c, rx, progress, &a.meta, &a.quota).await?;
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
        print_event(&e, out);
    }
    Ok(())
}

/// One event: a JSON line with `--json`, else `SEQ TIME KIND PATH ORIGIN DETAIL`.
fn print_event(e: &pb::Event, out: Out) {
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

/// `aether activity`: pages of the session's activity, then (with `--follow`) its new changes
/// as they happen, filtered the same way.
pub async fn activity(c: &Client, a: ActivityArgs, out: Out) -> Result<()> {
    let since_ms = a.since.as_deref().map(parse_since).transpose()?;
    let operations: Vec<String> = a
        .operations
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    let prefix = a.prefix.as_deref().map(|p| p.trim_matches('/').to_owned());
    let mut printed = 0u64;
    let mut after = 0i64;
    loop {
        let left = a.limit.map(|l| l.saturating_sub(printed));
        if left == Some(0) {
            return Ok(());
        }
        let page = c
            .sessions()
            .get_activity(pb::GetActivityRequest {
                id: a.session.clone(),
                after: Some(after),
                since_ms,
                until_ms: None,
                principal: a.principal.clone(),
                surface: a.surface.clone(),
                operations: operations.clone(),
                path_prefix: prefix.clone(),
                limit: Some(left.unwrap_or(1000).min(1000) as u32),
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner();
        for e in &page.events {
            print_event(e, out);
            printed += 1;
            after = after.max(e.seq);
        }
        match page.next {
            Some(n) => after = after.max(n),
            None => break,
        }
    }
    if !a.follow {
        return Ok(());
    }
    // New changes from where the pages ended; the server's filters applied here.
    let mut stream = c
        .sessions()
        .watch_events(pb::WatchEventsRequest {
            id: a.session.clone(),
            after_seq: after,
            from_now: false,
        })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    while a.limit.is_none_or(|l| printed < l) {
        let Some(e) = stream.message().await.map_err(|s| c.err(s))? else {
            break;
        };
        if e.seq <= after {
            continue;
        }
        let origin = e.origin.as_ref();
        let kind = name_of(e.kind().as_str_name(), "EVENT_KIND_");
        let keep = since_ms.is_none_or(|t| e.at >= t)
            && a.principal
                .as_ref()
                .is_none_or(|p| origin.is_some_and(|o| &o.principal == p))
            && a.surface
                .as_ref()
                .is_none_or(|s| origin.is_some_and(|o| name_of(o.surface().as_str_name(), "SURFACE_") == *s))
            && (operations.is_empty() || operations.contains(&kind))
            && prefix.as_deref().is_none_or(|p| {
                p.is_empty()
                    || e.path.as_deref().is_some_and(|path| {
                        path == p || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
                    })
            });
        if keep {
            print_event(&e, out);
            printed += 1;
        }
    }
    Ok(())
}

/// `--since`: milliseconds since the epoch, or an age (`90s`, `15m`, `2h`, `7d`) before now.
fn parse_since(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        CliError::usage(
            format!("--since '{s}' is neither a time nor an age"),
            "give milliseconds since the Unix epoch, or an age such as 90s, 15m, 2h, 7d",
        )
    };
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(now - n.saturating_mul(secs * 1000))
}

/// A proto enum value's name as the REST API and the logs spell it: `EVENT_KIND_IMPORT_PROGRESS`
/// is `import_progress`.
fn name_of(proto_name: &str, prefix: &str) -> String {
    proto_name
        .strip_prefix(prefix)
        .unwrap_or(proto_name)
        .to_ascii_lowercase()
}
