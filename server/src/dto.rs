//! The JSON shapes of API v1: the public contract, converted from core types here and only here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub id: String,
    /// `active` or `archived`.
    pub state: String,
    /// Git tree id of the base the session's changes apply to.
    pub base_tree: String,
    /// Newest commit of the session's lineage (checkpoint, commit or fork point).
    pub head: Option<String>,
    pub branch: String,
    pub parent: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub checkpoints: u64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<aether_core::SessionRecord> for Session {
    fn from(r: aether_core::SessionRecord) -> Self {
        Session {
            id: r.id.to_string(),
            state: r.state.as_str().to_owned(),
            base_tree: r.base_tree.to_hex().to_string(),
            head: r.head.map(|h| h.to_hex().to_string()),
            branch: r.branch,
            parent: r.parent.map(|p| p.to_string()),
            labels: r.labels,
            tags: r.tags,
            checkpoints: r.checkpoint_seq,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    Empty,
    /// Another session's current state, or one of its revisions (`checkpoints/N`, a branch, a commit id).
    Session {
        session: String,
        at: Option<String>,
    },
    /// A git repository: an absolute path on the server, a `file://` or an `http(s)://` URL.
    /// Its branches and tags become the session's; the session starts at `ref` (a branch, tag,
    /// full ref name or commit id), by default at the repository's HEAD.
    Git {
        url: String,
        #[serde(rename = "ref")]
        rev: Option<String>,
    },
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub source: Option<Source>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
    pub branch: Option<String>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ForkSession {
    /// A revision of the parent to fork from; its current state when absent.
    pub at: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    /// Labels to set; a `null` value removes the label.
    #[serde(default)]
    pub labels: BTreeMap<String, Option<String>>,
    /// Replaces the tags when present.
    pub tags: Option<BTreeSet<String>>,
}

#[derive(Deserialize, IntoParams)]
pub struct ListParams {
    /// `key=value`; repeat to require several labels.
    #[serde(default)]
    pub label: Vec<String>,
    /// `active` or `archived`.
    pub state: Option<String>,
    /// Page size (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct ImportParams {
    /// `key=value`; repeat for several labels.
    #[serde(default)]
    pub label: Vec<String>,
    #[serde(default)]
    pub tag: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    pub blake3: String,
}

#[derive(Serialize, ToSchema)]
pub struct Stat {
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    /// Git blob id (files and symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    pub chunked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extents: Option<Vec<Extent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

pub fn kind_name(k: aether_core::FileKind) -> &'static str {
    match k {
        aether_core::FileKind::File => "file",
        aether_core::FileKind::Dir => "dir",
        aether_core::FileKind::Symlink => "symlink",
    }
}

impl From<aether_core::Stat> for Stat {
    fn from(s: aether_core::Stat) -> Self {
        Stat {
            path: s.path,
            kind: kind_name(s.kind).to_owned(),
            mode: s.mode,
            size: s.size,
            mtime_ns: s.mtime_ns,
            oid: s.oid,
            chunked: s.chunked,
            extents: s.extents.map(|v| {
                v.into_iter()
                    .map(|e| Extent {
                        offset: e.offset,
                        length: e.length,
                        blake3: e.blake3,
                    })
                    .collect()
            }),
            symlink_target: s.symlink_target,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Stat>,
}

#[derive(Deserialize, IntoParams)]
pub struct TreeParams {
    #[serde(default)]
    pub recursive: bool,
    pub at: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct AtParams {
    /// A revision: `checkpoints/N`, a branch, `HEAD` or a commit id.
    pub at: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct PutParams {
    /// Permission bits of a new file, octal (default 644).
    pub mode: Option<String>,
    /// Create missing parent directories (default true).
    pub parents: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
pub struct PatchParams {
    /// Write the body at this byte offset.
    pub offset: Option<u64>,
    /// Cut or extend the file to this size (the body must be empty).
    pub truncate: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
pub struct DeleteParams {
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub from: String,
    pub to: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
    #[serde(default)]
    pub parents: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SymlinkRequest {
    pub path: String,
    pub target: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChmodRequest {
    pub path: String,
    /// Octal string (`"755"`) or number (`493`).
    pub mode: serde_json::Value,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Checkpoint {
    pub number: u64,
    pub commit: String,
    pub tree: String,
    pub message: String,
    pub created_at: i64,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub ref_name: Option<String>,
}

impl From<aether_core::CheckpointRecord> for Checkpoint {
    fn from(c: aether_core::CheckpointRecord) -> Self {
        Checkpoint {
            number: c.number,
            commit: c.commit.to_hex().to_string(),
            tree: c.tree.to_hex().to_string(),
            message: c.message,
            created_at: c.created_at,
            ref_name: None,
        }
    }
}

impl From<aether_core::CheckpointOutcome> for Checkpoint {
    fn from(c: aether_core::CheckpointOutcome) -> Self {
        Checkpoint {
            ref_name: Some(c.ref_name),
            ..Checkpoint::from(c.checkpoint)
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointList {
    pub checkpoints: Vec<Checkpoint>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The revision to restore (`checkpoints/N`, a branch, a commit id).
    pub rev: String,
}

#[derive(Serialize, ToSchema)]
pub struct RestoreResult {
    /// The checkpoint holding the state that was discarded, if anything would have been lost.
    pub saved: Option<Checkpoint>,
    pub restored_commit: String,
    pub tree: String,
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub message: String,
    pub author: Option<Person>,
    /// Defaults to the session's branch.
    pub branch: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch.
    pub time: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Commit {
    pub id: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub author: Signature,
    pub committer: Signature,
    pub message: String,
    /// Paths changed relative to the first parent (only on single-commit requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
}

#[derive(Serialize, ToSchema)]
pub struct Change {
    pub path: String,
    /// `added`, `deleted` or `modified`.
    pub change: String,
}

fn sig(s: aether_core::Signature) -> Signature {
    Signature {
        name: s.name,
        email: s.email,
        time: s.time,
    }
}

impl From<aether_core::CommitInfo> for Commit {
    fn from(c: aether_core::CommitInfo) -> Self {
        Commit {
            id: c.id.to_hex().to_string(),
            tree: c.tree.to_hex().to_string(),
            parents: c.parents.iter().map(|p| p.to_hex().to_string()).collect(),
            author: sig(c.author),
            committer: sig(c.committer),
            message: c.message,
            changes: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CommitList {
    pub commits: Vec<Commit>,
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct LogParams {
    pub rev: Option<String>,
    pub after: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
pub struct ExportParams {
    /// `tar` (default) or `tar.gz`.
    pub format: Option<String>,
    pub at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub sessions: Vec<String>,
    /// `read` or `write`.
    pub access: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub sessions: Vec<String>,
    pub access: String,
    pub description: String,
    pub created_at: i64,
    /// The secret; shown only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<aether_core::TokenRecord> for Token {
    fn from(t: aether_core::TokenRecord) -> Self {
        Token {
            id: t.id,
            sessions: t.sessions.iter().map(|s| s.to_string()).collect(),
            access: t.access.as_str().to_owned(),
            description: t.description,
            created_at: t.created_at,
            token: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}
