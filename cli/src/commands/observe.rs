//! `aether top` (the busiest sessions, live) and `aether session health`. Their `--json` shapes
//! are the HTTP API's (`GET /v1/analytics`, `GET /v1/sessions/{id}/health`).

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};

use aether_proto::v1 as pb;

use crate::Out;
use crate::args::{IdArg, TopArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output::{self, print_json};

/// Clear the screen and put the cursor home: only ever written to a terminal.
const CLEAR: &str = "\x1b[H\x1b[2J";

fn traffic_json(t: Option<&pb::Traffic>) -> Value {
    let t = t.copied().unwrap_or_default();
    json!({"operations": t.operations, "errors": t.errors, "bytes_read": t.bytes_read, "bytes_written": t.bytes_written})
}

/// The analytics as `GET /v1/analytics` answers them.
pub fn analytics_json(a: &pb::Analytics) -> Value {
    let with = |mut v: Value, key: &str, value: Value| {
        v[key] = value;
        v
    };
    json!({
        "bucket": a.bucket,
        "bucket_ms": a.bucket_ms,
        "session": a.session,
        "kept_since": a.kept_since,
        "buckets": a.buckets.iter().map(|b| with(traffic_json(b.traffic.as_ref()), "start", json!(b.start))).collect::<Vec<_>>(),
        "totals": traffic_json(a.totals.as_ref()),
        "latency": a.latency.iter().map(|l| json!({
            "operation": l.operation, "count": l.count, "errors": l.errors,
            "p50_us": l.p50_us, "p90_us": l.p90_us, "p99_us": l.p99_us,
        })).collect::<Vec<_>>(),
        "top_sessions": a.top_sessions.iter().map(|s| with(traffic_json(s.traffic.as_ref()), "session", json!(s.session))).collect::<Vec<_>>(),
        "top_paths": a.top_paths.iter().map(|p| json!({"session": p.session, "path": p.path, "operations": p.operations})).collect::<Vec<_>>(),
        "tracked_paths": a.tracked_paths,
        "max_paths": a.max_paths,
        "max_sessions": a.max_sessions,
    })
}

/// Microseconds, readably.
fn micros(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// One frame of `aether top`.
fn frame(a: &pb::Analytics, window: &str) -> String {
    let totals = a.totals.unwrap_or_default();
    let mut out = format!(
        "aether top: {} operations, {} read, {} written in the last {window} (at {} UTC)\n\n",
        totals.operations,
        output::size(totals.bytes_read),
        output::size(totals.bytes_written),
        output::time_ms(now_ms()),
    );
    if a.top_sessions.is_empty() {
        out.push_str("no traffic\n");
    } else {
        let rows: Vec<Vec<String>> = a
            .top_sessions
            .iter()
            .map(|s| {
                let t = s.traffic.unwrap_or_default();
                vec![
                    s.session.clone(),
                    t.operations.to_string(),
                    t.errors.to_string(),
                    output::size(t.bytes_read),
                    output::size(t.bytes_written),
                ]
            })
            .collect();
        out.push_str(&output::table(&["SESSION", "OPS", "ERRORS", "READ", "WRITTEN"], &rows));
        out.push('\n');
    }
    if !a.latency.is_empty() {
        let rows: Vec<Vec<String>> = a
            .latency
            .iter()
            .map(|l| {
                vec![
                    l.operation.clone(),
                    l.count.to_string(),
                    micros(l.p50_us),
                    micros(l.p90_us),
                    micros(l.p99_us),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&output::table(&["OPERATION", "COUNT", "P50", "P90", "P99"], &rows));
        out.push('\n');
    }
    if !a.top_paths.is_empty() {
        let rows: Vec<Vec<String>> = a
            .top_paths
            .iter()
            .map(|p| vec![p.session.clone(), p.path.clone(), p.operations.to_string()])
            .collect();
        out.push('\n');
        out.push_str(&output::table(&["SESSION", "PATH", "OPS"], &rows));
        out.push('\n');
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `--window`: `90s`, `15m`, `2h`, `7d`, in milliseconds.
fn window_ms(s: &str) -> Result<i64> {
    let bad = || {
        CliError::usage(
            format!("--window '{s}' is not a duration"),
            "give a duration such as 90s, 15m, 2h or 7d",
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
    if n <= 0 {
        return Err(bad());
    }
    Ok(n.saturating_mul(secs * 1000))
}

/// `aether top`: the busiest sessions over the last `--window`, one frame every `--interval`
/// seconds (the screen cleared between frames only on a terminal), or one frame with `--once`.
pub async fn top(c: &Client, a: TopArgs, out: Out) -> Result<()> {
    let window = window_ms(&a.window)?;
    if a.interval == 0 {
        return Err(CliError::usage(
            "--interval must be at least 1",
            "give seconds, such as --interval 2",
        ));
    }
    let bucket = if window <= 3 * 3_600_000 {
        "minute"
    } else if window <= 3 * 86_400_000 {
        "hour"
    } else {
        "day"
    };
    let terminal = std::io::stdout().is_terminal();
    loop {
        let report = c
            .sessions()
            .get_analytics(pb::GetAnalyticsRequest {
                session: None,
                bucket: Some(bucket.to_owned()),
                since_ms: Some(now_ms() - window),
                until_ms: None,
                top: Some(a.top),
            })
            .await
            .map_err(|s| c.err(s))?
            .into_inner();
        if out.json {
            print_json(&analytics_json(&report));
        } else {
            let text = frame(&report, &a.window);
            let clear = if terminal && !a.once { CLEAR } else { "" };
            outln!("{clear}{}", text.trim_end());
        }
        if a.once {
            return Ok(());
        }
        if !terminal && !out.json {
            outln!("");
        }
        tokio::time::sleep(Duration::from_secs(a.interval)).await;
    }
}

fn failed_json(f: &pb::FailedOperation) -> Value {
    json!({"at": f.at, "operation": f.operation, "code": f.code, "message": f.message})
}

/// A session's health as `GET /v1/sessions/{id}/health` answers it.
pub fn health_json(h: &pb::SessionHealth) -> Value {
    json!({
        "session": h.session,
        "status": h.status,
        "reasons": h.reasons,
        "updated_at": h.updated_at,
        "mounts": h.mounts.iter().map(|m| json!({"mount": m.mount, "writer": m.writer, "pending_ms": m.pending_ms})).collect::<Vec<_>>(),
        "import": h.import.as_ref().map(|i| json!({
            "state": i.state,
            "progress": i.progress_json.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
            "error": i.error.as_ref().map(failed_json),
        })),
        "last_error": h.last_error.as_ref().map(failed_json),
        "quota": h.quota.as_ref().map(|q| json!({
            "limit_bytes": q.limit_bytes,
            "limit_files": q.limit_files,
            "used_bytes": q.used_bytes,
            "used_files": q.used_files,
            "bytes_left": q.bytes_left,
            "files_left": q.files_left,
        })),
    })
}

/// `aether session health ID`.
pub async fn health(c: &Client, a: IdArg, out: Out) -> Result<()> {
    let h = c
        .sessions()
        .get_session_health(pb::GetSessionRequest { id: a.session })
        .await
        .map_err(|s| c.err(s))?
        .into_inner();
    if out.json {
        print_json(&health_json(&h));
        return Ok(());
    }
    let mut pairs = vec![("session", h.session.clone()), ("status", h.status.clone())];
    for r in &h.reasons {
        pairs.push(("reason", r.clone()));
    }
    pairs.push(("updated", h.updated_at.map_or_else(|| "-".to_owned(), output::time_ms)));
    if h.mounts.is_empty() {
        pairs.push(("mounts", "none attached".to_owned()));
    }
    for m in &h.mounts {
        let role = if m.writer { "writer" } else { "reader" };
        let pending = m.pending_ms.map_or_else(
            || "nothing pending".to_owned(),
            |ms| format!("oldest change pending {ms} ms"),
        );
        pairs.push(("mount", format!("{} ({role}): {pending}", m.mount)));
    }
    if let Some(i) = &h.import {
        let what = match (&i.error, &i.progress_json) {
            (Some(e), _) => format!("failed: {} ({})", e.message, e.code),
            (None, Some(p)) => format!("{}: {p}", i.state),
            (None, None) => i.state.clone(),
        };
        pairs.push(("import", what));
    }
    pairs.push((
        "last error",
        h.last_error.as_ref().map_or_else(
            || "-".to_owned(),
            |e| format!("{} {}: {} ({})", output::time_ms(e.at), e.operation, e.message, e.code),
        ),
    ));
    let quota = h.quota.as_ref().map_or_else(
        || "-".to_owned(),
        |q| {
            let mut parts = Vec::new();
            if let (Some(limit), Some(left)) = (q.limit_bytes, q.bytes_left) {
                parts.push(format!(
                    "{} of {} used, {} left",
                    output::size_text(q.used_bytes),
                    output::size_text(limit),
                    output::size_text(left)
                ));
            }
            if let (Some(limit), Some(left)) = (q.limit_files, q.files_left) {
                parts.push(format!("{} of {limit} files, {left} left", q.used_files));
            }
            parts.join("; ")
        },
    );
    pairs.push(("quota", quota));
    outln!("{}", output::fields(&pairs));
    Ok(())
}
