//! "What changed since position N of the session's event log, under prefix P": the query behind
//! `aether fsmonitor`, git's fsmonitor hook. The answer is either a set of paths (relative to
//! the prefix) or "everything", with a new position to ask from next time.
//!
//! The one rule is that an answer may say too much, never too little: a position this log cannot
//! answer from (unknown, beyond the head, of events no longer kept), a restore or repair since,
//! a change at or above the prefix, a mount that did not hand its changes over in time, or more
//! paths than [`MAX_CHANGED_PATHS`] all answer "everything". The new position is taken before
//! the events are read, so a change racing the query is reported again rather than lost; and it
//! stops short of the changes of the last [`SETTLE`], which other mounts may not have applied to
//! what they show yet (git stats the files it is told about through its mount, and would take a
//! not yet updated stat as "unchanged" for good), so those are reported once more next time.

use std::collections::BTreeSet;
use std::time::Duration;

use aether_core::{Event, EventKind, SessionId};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

/// Most paths an answer lists; beyond, it says "everything" (a full scan is then cheaper).
pub const MAX_CHANGED_PATHS: usize = 10_000;

/// Most events one query reads; beyond, it says "everything".
const MAX_EVENTS: usize = 100_000;

/// Events read per store query.
const PAGE: usize = 1_000;

/// How long after a change every mount of the session is taken to show it (they apply the
/// watch stream within milliseconds; this leaves a wide margin).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Why an answer is "everything".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Everything {
    /// No position was given, or it is not one of this session's events (unknown, another
    /// session's, beyond the head).
    UnknownPosition,
    /// The events after the position are no longer all kept.
    Pruned,
    /// The session was restored or repaired since: any file may differ.
    Reset,
    /// The prefix itself, or a directory above it, changed.
    PrefixChanged,
    /// A mount did not hand its changes over in time.
    Incomplete,
    /// More paths (or events) than an answer lists.
    TooMany,
}

impl Everything {
    pub fn as_str(self) -> &'static str {
        match self {
            Everything::UnknownPosition => "unknown_position",
            Everything::Pruned => "pruned",
            Everything::Reset => "reset",
            Everything::PrefixChanged => "prefix_changed",
            Everything::Incomplete => "incomplete",
            Everything::TooMany => "too_many",
        }
    }
}

/// The question.
#[derive(Clone, Debug, Default)]
pub struct ChangesSince {
    pub session: String,
    /// The position of an earlier answer; `None` asks only for a position ("everything").
    pub since: Option<i64>,
    /// A directory of the session (`a/b`, empty for the root); paths are answered relative to it.
    pub prefix: String,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The position to ask from next time.
    pub position: i64,
    /// `Some` when everything under the prefix may have changed (then `paths` is empty).
    pub everything: Option<Everything>,
    /// Paths relative to the prefix that may have changed, sorted; a directory whose whole
    /// content may have changed ends with `/`.
    pub paths: Vec<String>,
}

impl Service {
    /// What changed in `session` under `prefix` since position `since` (see the module).
    /// Needs read access; recalls the changes mounts still hold first, like every read.
    pub async fn changes_since(&self, p: &Principal, req: ChangesSince) -> Result<Changes> {
        let id = self.session(p, &req.session, Access::Read)?;
        let prefix = normalise_prefix(&req.prefix)?;
        let incomplete_before = p.incomplete_handoffs().len();
        self.recall(p, &id, "changes").await;
        let incomplete = p.incomplete_handoffs().len() > incomplete_before;
        let engine = self.engine_for(p);
        // The new position comes before the read: what lands later is reported again.
        let head = engine.event_cursor(&id).await?;
        let everything = |why| everything(self, p, &id, head, why);
        let since = match req.since {
            Some(n) if n > 0 && n <= head => n,
            _ => return everything(Everything::UnknownPosition).await,
        };
        // The position's own event must still be there: a log pruned past it cannot say what
        // happened after it (and a position of another session's event is not one of ours).
        let anchor = engine.events(&id, since - 1, 1).await?;
        if anchor.first().map(|e| e.seq) != Some(since) {
            return everything(Everything::Pruned).await;
        }
        if incomplete {
            return everything(Everything::Incomplete).await;
        }
        let settle_before = now_ms() - SETTLE.as_millis() as i64;
        let mut position = since;
        let mut settled = true;
        let mut paths = BTreeSet::new();
        let mut cursor = since;
        let mut read = 0usize;
        'pages: loop {
            let page = engine.events(&id, cursor, PAGE).await?;
            let full = page.len() == PAGE;
            for e in &page {
                if e.seq > head {
                    break 'pages;
                }
                cursor = e.seq;
                read += 1;
                if read > MAX_EVENTS {
                    return everything(Everything::TooMany).await;
                }
                settled = settled && e.at <= settle_before;
                if settled {
                    position = e.seq;
                }
                if let Err(why) = changed_paths(e, &prefix, &mut paths) {
                    return everything(why).await;
                }
                if paths.len() > MAX_CHANGED_PATHS {
                    return everything(Everything::TooMany).await;
                }
            }
            if !full {
                break;
            }
        }
        Ok(Changes {
            position,
            everything: None,
            paths: paths.into_iter().collect(),
        })
    }
}

/// "Everything", at `head` once its event is [`SETTLE`] old (waiting for that if need be):
/// git then stats every file, and must not see one a mount has not updated yet as unchanged.
async fn everything(service: &Service, p: &Principal, id: &SessionId, head: i64, why: Everything) -> Result<Changes> {
    let done = Changes {
        position: head,
        everything: Some(why),
        paths: Vec::new(),
    };
    if head <= 0 {
        return Ok(done);
    }
    let newest = service.engine_for(p).events(id, head - 1, 1).await?;
    if let Some(e) = newest.first().filter(|e| e.seq == head) {
        let age = now_ms() - e.at;
        let settle = SETTLE.as_millis() as i64;
        if (0..settle).contains(&age) {
            tokio::time::sleep(Duration::from_millis((settle - age) as u64)).await;
        }
    }
    Ok(done)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `a/b` from `/a/b/`; `.` and `..` are refused.
fn normalise_prefix(raw: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in raw.split('/').filter(|s| !s.is_empty()) {
        if part == "." || part == ".." || part.contains('\0') {
            return Err(ServiceError::bad_request(format!(
                "prefix '{}' is not a path of the session",
                raw.escape_debug()
            )));
        }
        parts.push(part);
    }
    Ok(parts.join("/"))
}

/// Add what `e` changed under `prefix` to `out`; `Err` when it may have changed everything.
fn changed_paths(e: &Event, prefix: &str, out: &mut BTreeSet<String>) -> std::result::Result<(), Everything> {
    let touches_names = match e.kind {
        EventKind::Restore | EventKind::Repair => return Err(Everything::Reset),
        EventKind::Write
        | EventKind::Truncate
        | EventKind::Chmod
        | EventKind::Chown
        | EventKind::Symlink
        | EventKind::Mknod
        | EventKind::Link
        | EventKind::SetTimes => false,
        // A name that appears or goes may be a directory with everything below it.
        EventKind::Delete | EventKind::Mkdir | EventKind::Rename => true,
        EventKind::Created
        | EventKind::Forked
        | EventKind::Updated
        | EventKind::Archived
        | EventKind::Checkpoint
        | EventKind::Commit
        | EventKind::ImportProgress
        | EventKind::HandoffIncomplete => return Ok(()),
    };
    let Some(path) = e.path.as_deref() else {
        // A change of files that names none: it may be anything.
        return Err(Everything::Reset);
    };
    let detail = |key: &str| e.detail.get(key);
    let mut names = vec![path.to_owned()];
    if let Some(to) = detail("to").and_then(|v| v.as_str()) {
        names.push(to.to_owned());
    }
    if let Some(from) = detail("from").and_then(|v| v.as_str()) {
        names.push(from.to_owned());
    }
    if let Some(linked) = detail("linked").and_then(|v| v.as_array()) {
        names.extend(linked.iter().filter_map(|v| v.as_str()).map(str::to_owned));
    }
    for name in names {
        let name = name.trim_matches('/');
        match relative(name, prefix) {
            Relative::Above => return Err(Everything::PrefixChanged),
            Relative::Outside => {}
            Relative::Inside(rel) => {
                if touches_names {
                    out.insert(format!("{rel}/"));
                }
                out.insert(rel.to_owned());
            }
        }
    }
    Ok(())
}

enum Relative<'a> {
    /// The prefix itself or a directory above it.
    Above,
    Outside,
    Inside(&'a str),
}

fn relative<'a>(path: &'a str, prefix: &str) -> Relative<'a> {
    if prefix.is_empty() {
        return if path.is_empty() {
            Relative::Above
        } else {
            Relative::Inside(path)
        };
    }
    if path.is_empty() || path == prefix || (prefix.starts_with(path) && prefix.as_bytes()[path.len()] == b'/') {
        return Relative::Above;
    }
    match path.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('/') => Relative::Inside(&rest[1..]),
        _ => Relative::Outside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_relate_to_the_prefix_by_whole_names() {
        assert!(matches!(relative("a/b", ""), Relative::Inside("a/b")));
        assert!(matches!(relative("", ""), Relative::Above));
        assert!(matches!(relative("repo/x", "repo"), Relative::Inside("x")));
        assert!(matches!(relative("repo", "repo"), Relative::Above));
        assert!(matches!(relative("a", "a/repo"), Relative::Above));
        assert!(matches!(relative("repo2/x", "repo"), Relative::Outside));
        assert!(matches!(relative("re", "repo"), Relative::Outside));
        assert!(matches!(relative("other", "a/repo"), Relative::Outside));
    }

    #[test]
    fn prefixes_are_plain_relative_paths() {
        assert_eq!(normalise_prefix("/a//b/").unwrap(), "a/b");
        assert_eq!(normalise_prefix("").unwrap(), "");
        assert!(normalise_prefix("a/../b").is_err());
    }
}
