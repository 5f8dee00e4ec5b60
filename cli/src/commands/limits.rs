//! What a session may hold and keep: `aether session usage`, `aether session quota`, `aether
//! session retention`, and the server-wide `aether usage`.

use aether_proto::v1 as pb;
use serde_json::json;

use crate::Out;
use crate::args::{IdArg, QuotaArgs, QuotaCmdArgs, RetentionArgs, RetentionCmdArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{fields, print_json, quota_text, size_text};

/// The quota of a create, fork or import request; `None` when no limit was given.
pub fn quota(a: &QuotaArgs) -> Option<pb::Quota> {
    (a.quota_bytes.is_some() || a.quota_files.is_some()).then_some(pb::Quota {
        bytes: a.quota_bytes,
        files: a.quota_files,
    })
}

/// The retention policy of a create or fork request; `None` when none was given.
pub fn retention(a: &RetentionArgs) -> Option<pb::Retention> {
    (a.keep_checkpoints.is_some() || a.keep_checkpoint_days.is_some()).then_some(pb::Retention {
        keep_last: a.keep_checkpoints,
        keep_days: a.keep_checkpoint_days,
    })
}

pub async fn set_retention(c: &Client, a: RetentionCmdArgs, out: Out) -> Result<()> {
    let policy = if a.server_default {
        pb::Retention::default()
    } else {
        retention(&a.retention).ok_or_else(|| {
            CliError::usage(
                "no policy given",
                "give --keep-checkpoints N and/or --keep-checkpoint-days D, or --server-default",
            )
        })?
    };
    let req = pb::UpdateSessionRequest {
        id: a.session,
        retention: Some(policy),
        ..Default::default()
    };
    update_and_print(c, req, out).await
}

/// Send `req` and print the session it leaves.
async fn update_and_print(c: &Client, req: pb::UpdateSessionRequest, out: Out) -> Result<()> {
    let s = c
        .sessions()
        .update_session(req)
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&crate::output::session_json(&s));
    } else {
        outln!("{}", crate::output::session_human(&s));
    }
    Ok(())
}

pub async fn session(c: &Client, a: IdArg, out: Out) -> Result<()> {
    let u = c
        .usage()
        .get_session_usage(pb::GetSessionRequest { id: a.session })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    let q = u.quota.unwrap_or_default();
    if out.json {
        print_json(&json!({
            "id": u.id,
            "files": u.files,
            "directories": u.directories,
            "symlinks": u.symlinks,
            "special_files": u.special_files,
            "bytes": u.bytes,
            "unique_files": u.unique_files,
            "unique_bytes": u.unique_bytes,
            "shared_bytes": u.shared_bytes,
            "cow_bytes": u.cow_bytes,
            "large_files": u.large_files,
            "large_bytes": u.large_bytes,
            "chunks": u.chunks,
            "large_stored_bytes": u.large_stored_bytes,
            "dedup_ratio": u.dedup_ratio,
            "checkpoints": u.checkpoints,
            "commits": u.commits,
            "quota": {"bytes": q.bytes, "files": q.files},
        }));
        return Ok(());
    }
    let headroom = match (q.bytes, q.files) {
        (None, None) => "-".to_owned(),
        (bytes, files) => {
            let mut parts = Vec::new();
            if let Some(b) = bytes {
                parts.push(size_text(b.saturating_sub(u.unique_bytes)));
            }
            if let Some(f) = files {
                parts.push(format!("{} files", f.saturating_sub(u.unique_files)));
            }
            parts.join(", ")
        }
    };
    outln!(
        "{}",
        fields(&[
            ("session", u.id.clone()),
            (
                "holds",
                format!(
                    "{} files, {} directories, {} symlinks, {}",
                    u.files,
                    u.directories,
                    u.symlinks,
                    size_text(u.bytes)
                )
            ),
            (
                "own",
                format!("{} files, {}", u.unique_files, size_text(u.unique_bytes))
            ),
            ("shared", size_text(u.shared_bytes)),
            ("stored for it", size_text(u.cow_bytes)),
            (
                "large files",
                format!(
                    "{} ({}, {} chunks, dedup {:.2}x)",
                    u.large_files,
                    size_text(u.large_bytes),
                    u.chunks,
                    u.dedup_ratio
                )
            ),
            ("checkpoints", u.checkpoints.to_string()),
            ("commits", u.commits.to_string()),
            ("quota", quota_text(q)),
            ("headroom", headroom),
        ])
    );
    Ok(())
}

pub async fn set_quota(c: &Client, a: QuotaCmdArgs, out: Out) -> Result<()> {
    let quota = if a.unlimited {
        pb::Quota::default()
    } else {
        quota(&a.quota).ok_or_else(|| {
            CliError::usage(
                "no limit given",
                "give --quota-bytes SIZE and/or --quota-files N, or --unlimited",
            )
        })?
    };
    let req = pb::UpdateSessionRequest {
        id: a.session,
        quota: Some(quota),
        ..Default::default()
    };
    update_and_print(c, req, out).await
}

pub async fn server(c: &Client, out: Out) -> Result<()> {
    let u = c
        .usage()
        .get_server_usage(pb::Empty {})
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&json!({
            "sessions": u.sessions,
            "files": u.files,
            "bytes": u.bytes,
            "unique_bytes": u.unique_bytes,
            "disk": {
                "objects": u.objects_bytes,
                "chunks": u.chunks_bytes,
                "metadata": u.metadata_bytes,
                "cache": u.cache_bytes,
            },
            "dedup_ratio": u.dedup_ratio,
        }));
        return Ok(());
    }
    outln!(
        "{}",
        fields(&[
            ("sessions", u.sessions.to_string()),
            ("files", u.files.to_string()),
            ("bytes held", size_text(u.bytes)),
            ("own bytes", size_text(u.unique_bytes)),
            ("objects", size_text(u.objects_bytes)),
            ("chunks", size_text(u.chunks_bytes)),
            ("metadata", size_text(u.metadata_bytes)),
            ("cache", size_text(u.cache_bytes)),
            ("dedup", format!("{:.2}x", u.dedup_ratio)),
        ])
    );
    Ok(())
}
