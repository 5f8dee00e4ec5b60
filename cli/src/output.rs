//! What the CLI prints: JSON shapes (stable, the same field names as the HTTP API) and human
//! forms (aligned tables, sizes in KiB/MiB, UTC times).

use serde_json::{Value, json};

use aether_proto::v1 as pb;

/// Print a JSON value, pretty, on stdout.
pub fn print_json(v: &Value) {
    print_line(format_args!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    ));
}

/// Exit code of a command whose stdout was closed by its reader (`aether ... | head -1`): what
/// a shell reports for a process ended by SIGPIPE (128 + 13).
pub const EXIT_CLOSED_STDOUT: i32 = 141;

/// Print one line on stdout (what `println!` does, without its panic). When the reader closed
/// the pipe, the output is not wanted any more: the process ends at once, quietly, with
/// [`EXIT_CLOSED_STDOUT`]; any other failure to write ends it with one line on stderr.
pub fn print_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(EXIT_CLOSED_STDOUT),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// A failure as `--json` prints it on stderr: `{"error": {"code", "message", "hint"}}`, with
/// the same `code` strings as the HTTP API's error bodies and gRPC's `aether-code`.
pub fn error_json(e: &crate::error::CliError) -> Value {
    json!({"error": {"code": e.code(), "message": e.message, "hint": e.hint}})
}

/// `1536` -> `1.5 KiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_ms(ms: i64) -> String {
    time_s(ms.div_euclid(1000))
}

pub fn time_s(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Rows under a header, each column as wide as its widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `key: value` lines with the keys aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<w$} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn session_json(s: &pb::Session) -> Value {
    json!({
        "id": s.id,
        "state": s.state,
        "base_tree": s.base_tree,
        "head": s.head,
        "branch": s.branch,
        "parent": s.parent,
        "labels": s.labels.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "tags": s.tags,
        "checkpoints": s.checkpoints,
        "quota": {
            "bytes": s.quota.and_then(|q| q.bytes),
            "files": s.quota.and_then(|q| q.files),
        },
        "retention": {
            "keep_last": s.retention.and_then(|r| r.keep_last),
            "keep_days": s.retention.and_then(|r| r.keep_days),
        },
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

pub fn labels_text(s: &pb::Session) -> String {
    let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    labels.join(",")
}

pub fn session_human(s: &pb::Session) -> String {
    fields(&[
        ("id", s.id.clone()),
        ("state", s.state.clone()),
        ("branch", s.branch.clone()),
        ("head", s.head.clone().unwrap_or_else(|| "-".into())),
        ("base tree", s.base_tree.clone()),
        ("parent", s.parent.clone().unwrap_or_else(|| "-".into())),
        ("labels", or_dash(labels_text(s))),
        ("tags", or_dash(s.tags.join(","))),
        ("checkpoints", s.checkpoints.to_string()),
        ("quota", quota_text(s.quota.unwrap_or_default())),
        ("retention", retention_text(s.retention.unwrap_or_default())),
        ("created", time_ms(s.created_at)),
        ("updated", time_ms(s.updated_at)),
    ])
}

/// `10.0 MiB, 1000 files`, `-` without limits.
pub fn quota_text(q: aether_proto::v1::Quota) -> String {
    let mut parts = Vec::new();
    if let Some(b) = q.bytes {
        parts.push(size_text(b));
    }
    if let Some(f) = q.files {
        parts.push(format!("{f} files"));
    }
    or_dash(parts.join(", "))
}

/// `last 10, 7 days`; `server default` when unset.
pub fn retention_text(r: aether_proto::v1::Retention) -> String {
    let mut parts = Vec::new();
    if let Some(n) = r.keep_last {
        parts.push(format!("last {n}"));
    }
    if let Some(d) = r.keep_days {
        parts.push(format!("{d} days"));
    }
    if parts.is_empty() {
        "server default".into()
    } else {
        parts.join(", ")
    }
}

/// Bytes in the largest unit of 1024 that keeps a whole part: `512 B`, `1.5 KiB`, `10.0 GiB`.
pub fn size_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

pub fn or_dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

pub fn stat_json(s: &pb::Stat) -> Value {
    let mut v = json!({
        "path": s.path,
        "kind": s.kind,
        "mode": s.mode,
        "size": s.size,
        "mtime_ns": s.mtime_ns,
        "chunked": s.chunked,
    });
    if let Some(o) = &s.oid {
        v["oid"] = json!(o);
    }
    if let Some(t) = &s.symlink_target {
        v["symlink_target"] = json!(t);
    }
    if !s.extents.is_empty() {
        v["extents"] = s
            .extents
            .iter()
            .map(|e| json!({"offset": e.offset, "length": e.length, "blake3": e.blake3}))
            .collect();
    }
    v
}

pub fn stat_human(s: &pb::Stat) -> String {
    let mut pairs = vec![
        ("path", or_dash(s.path.clone())),
        ("kind", s.kind.clone()),
        ("mode", format!("{:o}", s.mode)),
        ("size", format!("{} ({} bytes)", size(s.size), s.size)),
        ("modified", time_s(s.mtime_ns.div_euclid(1_000_000_000))),
    ];
    if let Some(o) = &s.oid {
        pairs.push(("blob", o.clone()));
    }
    if let Some(t) = &s.symlink_target {
        pairs.push(("target", t.clone()));
    }
    if s.chunked {
        pairs.push(("chunks", s.extents.len().to_string()));
    }
    fields(&pairs)
}

pub fn checkpoint_json(c: &pb::Checkpoint) -> Value {
    let mut v = json!({
        "number": c.number,
        "commit": c.commit,
        "tree": c.tree,
        "message": c.message,
        "created_at": c.created_at,
    });
    if let Some(r) = &c.r#ref {
        v["ref"] = json!(r);
    }
    v
}

fn signature_json(s: &Option<pb::Signature>) -> Value {
    match s {
        Some(s) => json!({"name": s.name, "email": s.email, "time": s.time}),
        None => Value::Null,
    }
}

pub fn commit_json(c: &pb::Commit) -> Value {
    json!({
        "id": c.id,
        "tree": c.tree,
        "parents": c.parents,
        "author": signature_json(&c.author),
        "committer": signature_json(&c.committer),
        "message": c.message,
    })
}

pub fn token_json(t: &pb::Token) -> Value {
    let mut v = json!({
        "id": t.id,
        "sessions": t.sessions,
        "access": t.access,
        "description": t.description,
        "created_at": t.created_at,
    });
    if let Some(secret) = &t.token {
        v["token"] = json!(secret);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_tables() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 20), "5.0 MiB");
        assert_eq!(time_s(0), "1970-01-01 00:00:00");
        assert_eq!(time_s(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(time_ms(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(
            table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]),
            "A    LONGER\nxyz  1"
        );
    }
}
