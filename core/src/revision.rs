//! Naming states of a session: `HEAD`, a checkpoint (`checkpoints/N`, `refs/checkpoints/N`),
//! a branch (`main`, `heads/main`, `refs/heads/main`), or a full commit id.

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::meta::SessionRecord;
use crate::objects::Objects;
use crate::sessions::ref_prefix;

/// Resolve `rev` to a commit id within the session of `record`.
pub(crate) fn resolve(objects: &Objects, record: &SessionRecord, rev: &str) -> Result<ObjectId> {
    let unknown = || Error::not_found(format!("revision '{}' in session {}", rev.escape_debug(), record.id));
    let rev = rev.trim();
    if rev.is_empty() || rev.len() > 256 || rev.contains("..") || rev.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid revision '{}'",
            rev.escape_debug()
        )));
    }
    if rev == "HEAD" {
        return record.head.ok_or_else(unknown);
    }
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let oid = ObjectId::from_hex(rev.as_bytes()).map_err(|_| unknown())?;
        // The object database is shared by every session: a commit id names a state of this
        // session only if the session's history reaches it.
        return match objects.odb.header(&oid)? {
            Some((gix::objs::Kind::Commit, _)) if reachable(objects, record, oid)? => Ok(oid),
            _ => Err(unknown()),
        };
    }
    let short = rev.strip_prefix("refs/").unwrap_or(rev);
    let candidates: Vec<String> =
        if short.starts_with("checkpoints/") || short.starts_with("heads/") || short.starts_with("tags/") {
            vec![short.to_owned()]
        } else if short.bytes().all(|b| b.is_ascii_digit()) {
            vec![format!("checkpoints/{short}")]
        } else {
            vec![format!("heads/{short}"), format!("tags/{short}")]
        };
    let prefix = ref_prefix(&record.id);
    for c in candidates {
        let name = format!("{prefix}{c}");
        if gix::refs::FullName::try_from(name.as_str()).is_err() {
            return Err(Error::InvalidArgument(format!(
                "invalid revision '{}'",
                rev.escape_debug()
            )));
        }
        if let Some(oid) = objects.odb.find_ref(&name)? {
            return Ok(oid);
        }
    }
    Err(unknown())
}

/// Whether `target` is the session's head, one of its refs, or an ancestor of them.
fn reachable(objects: &Objects, record: &SessionRecord, target: ObjectId) -> Result<bool> {
    let mut queue: Vec<ObjectId> = record.head.into_iter().collect();
    queue.extend(
        objects
            .odb
            .list_refs(&ref_prefix(&record.id))?
            .into_iter()
            .map(|(_, oid)| oid),
    );
    let mut seen = std::collections::HashSet::new();
    while let Some(oid) = queue.pop() {
        if oid == target {
            return Ok(true);
        }
        if seen.insert(oid) {
            queue.extend(objects.odb.read_commit(&oid)?.parents);
        }
    }
    Ok(false)
}
