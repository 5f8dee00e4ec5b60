//! The JSON shapes of API v1: the public contract, converted from core types here and only here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Raw bytes (a file's content, an archive).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// `{id}` of a session's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The session id: 26 characters from `0-9a-z`.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{26}$")]
    pub id: String,
}

/// `{id}` and `{path}` of a session's file routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// The session id: 26 characters from `0-9a-z`.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{26}$")]
    pub id: String,
    /// A path inside the session, `/`-separated: no empty component (`a//b`), no `..`, no NUL;
    /// a name is at most 255 bytes, the path at most `max_path_len` bytes (4096).
    #[param(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
}

/// `{id}` and `{oid}` of a commit.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CommitPath {
    /// The session id: 26 characters from `0-9a-z`.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{26}$")]
    pub id: String,
    /// A commit id (40 hex digits) or another revision of the session.
    #[param(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub oid: String,
}

/// `{token_id}` of a token.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// The token's id (`tok_...`), not its secret.
    pub token_id: String,
}

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
    /// Limits on what the session holds of its own (see `GET /v1/sessions/{id}/usage`).
    pub quota: Quota,
    /// Which of its checkpoints are kept (both unset: the server's policy).
    pub retention: Retention,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Limits on the files and bytes a session holds of its own: what it does not share with the
/// state it was forked from. A limit left out (or `null`) is no limit. A change that would go
/// over is refused with 507 `quota_exceeded`; removing files is never refused.
#[derive(Serialize, Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields, from = "ObjectOf<QuotaFields>")]
pub struct Quota {
    /// Bytes of regular files.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub bytes: Option<u64>,
    /// Files and symbolic links.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub files: Option<u64>,
}

/// Which checkpoints of a session are kept: the newest `keep_last`, those taken `keep_days`
/// days ago or less, or both (a checkpoint either keeps is kept; the one the session's head is
/// never expires). Unset (both absent or `null`): the server's policy. Expired checkpoints lose
/// their ref before the next garbage collection, which reclaims what only they held; the kept
/// ones after an expired one get new commit ids (same tree, message and time).
#[derive(Serialize, Deserialize, ToSchema, Default, Clone, Copy)]
#[serde(deny_unknown_fields, from = "ObjectOf<RetentionFields>")]
pub struct Retention {
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub keep_last: Option<u64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub keep_days: Option<u64>,
}

/// A JSON object decoded as `T`. Serde's derive also takes an array of the fields' values for
/// a struct (`[1, 2]`); a body must name its fields.
pub struct ObjectOf<T>(T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for ObjectOf<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom("expected an object"));
        }
        serde_json::from_value(value)
            .map(ObjectOf)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaFields {
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    files: Option<u64>,
}

impl From<ObjectOf<QuotaFields>> for Quota {
    fn from(ObjectOf(q): ObjectOf<QuotaFields>) -> Self {
        Quota {
            bytes: q.bytes,
            files: q.files,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFields {
    #[serde(default)]
    keep_last: Option<u64>,
    #[serde(default)]
    keep_days: Option<u64>,
}

impl From<ObjectOf<RetentionFields>> for Retention {
    fn from(ObjectOf(r): ObjectOf<RetentionFields>) -> Self {
        Retention {
            keep_last: r.keep_last,
            keep_days: r.keep_days,
        }
    }
}

impl From<Retention> for aether_core::retention::CheckpointRetention {
    fn from(r: Retention) -> Self {
        aether_core::retention::CheckpointRetention {
            keep_last: r.keep_last,
            keep_days: r.keep_days,
        }
    }
}

impl From<aether_core::retention::CheckpointRetention> for Retention {
    fn from(r: aether_core::retention::CheckpointRetention) -> Self {
        Retention {
            keep_last: r.keep_last,
            keep_days: r.keep_days,
        }
    }
}

impl From<Quota> for aether_core::quota::Quota {
    fn from(q: Quota) -> Self {
        aether_core::quota::Quota {
            bytes: q.bytes,
            files: q.files,
        }
    }
}

impl From<aether_core::quota::Quota> for Quota {
    fn from(q: aether_core::quota::Quota) -> Self {
        Quota {
            bytes: q.bytes,
            files: q.files,
        }
    }
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
            quota: r.quota.into(),
            retention: r.retention.into(),
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
        #[schema(pattern = "^[0-9a-hjkmnp-tv-z]{26}$")]
        session: String,
        #[schema(
            pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
        )]
        at: Option<String>,
    },
    /// A git repository: an absolute path on the server, a `file://` or an `http(s)://` URL.
    /// Its branches and tags become the session's; the session starts at `ref` (a branch, tag,
    /// full ref name or commit id), by default at the repository's HEAD.
    Git {
        /// At most 4096 bytes without control characters.
        #[schema(
            pattern = r"^(?:/|file:///|https?://(?:[^/?#\s]*@)?[^/?#@:\s][^/?#@\s]*(?:[/?#]\S*)?$)[^\x00-\x1f\x7f-\x9f]*$"
        )]
        url: String,
        /// A branch, tag, full ref name or commit id.
        #[serde(rename = "ref")]
        #[schema(pattern = r"^(?!-)(?!.*\.\.)(?!.*@\{)[!-)+-9;->@-Z\]_-}]{1,256}$")]
        rev: Option<String>,
    },
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub source: Option<Source>,
    #[serde(default)]
    #[schema(schema_with = rules::labels)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = rules::tags)]
    pub tags: BTreeSet<String>,
    /// The session's branch (default `main`).
    #[schema(schema_with = rules::branch)]
    pub branch: Option<String>,
    /// Limits on what the session holds of its own; none when absent. An import larger than
    /// them is refused.
    pub quota: Option<Quota>,
    /// Which checkpoints are kept; the server's policy when absent.
    pub retention: Option<Retention>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ForkSession {
    /// A revision of the parent to fork from; its current state when absent.
    #[schema(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub at: Option<String>,
    #[serde(default)]
    #[schema(schema_with = rules::labels)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(schema_with = rules::tags)]
    pub tags: BTreeSet<String>,
    /// The fork's limits; its parent's when absent.
    pub quota: Option<Quota>,
    /// The fork's retention of checkpoints; its parent's when absent.
    pub retention: Option<Retention>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSession {
    /// Labels to set; a `null` value removes the label.
    #[serde(default)]
    #[schema(schema_with = rules::label_changes)]
    pub labels: BTreeMap<String, Option<String>>,
    /// Replaces the tags when present.
    #[schema(schema_with = rules::tags_or_null)]
    pub tags: Option<BTreeSet<String>>,
    /// Replaces the session's limits when present (a limit left out is no limit). Admin token.
    pub quota: Option<Quota>,
    /// Replaces its retention of checkpoints when present (`{}`: the server's policy).
    pub retention: Option<Retention>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `key=value`; repeat to require several labels.
    #[serde(default)]
    #[param(inline, value_type = Option<Vec<LabelPair>>)]
    pub label: Vec<String>,
    #[param(inline)]
    pub state: Option<SessionStateName>,
    /// Page size (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next` value of the previous page: a session id.
    #[param(pattern = "^[0-9a-hjkmnp-tv-z]{26}$")]
    pub after: Option<String>,
}

/// A session's state.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStateName {
    Active,
    Archived,
}

/// `key=value`: a label key (1 to 128 of `A-Za-z0-9._-/:`), `=`, and its value.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._/:-]{1,128}=")]
pub struct LabelPair(pub String);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// `key=value`; repeat for several labels.
    #[serde(default)]
    #[param(inline, value_type = Option<Vec<LabelPair>>)]
    pub label: Vec<String>,
    /// Repeat for several tags.
    #[serde(default)]
    #[param(inline, value_type = Option<Vec<TagName>>)]
    pub tag: Vec<String>,
    /// The session's quota of bytes (see `Quota`); none when absent.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub quota_bytes: Option<u64>,
    /// The session's quota of files (see `Quota`); none when absent.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub quota_files: Option<u64>,
}

/// A tag or label key: 1 to 128 of `A-Za-z0-9._-/:`.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9._/:-]{1,128}$")]
pub struct TagName(pub String);

#[derive(Serialize, ToSchema)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
    pub blake3: String,
}

#[derive(Serialize, ToSchema)]
pub struct Stat {
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `socket`, `char_device` or `block_device`.
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
    /// Owner and group set with chown; absent when never set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Device number of a character or block device; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Names of the entry (hard links); a directory: 2 + its subdirectories.
    pub nlink: u32,
    /// Hard-link group, the same for all names of one file; absent when never linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
}

pub fn kind_name(k: aether_core::FileKind) -> &'static str {
    k.as_str()
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
            uid: s.uid,
            gid: s.gid,
            rdev: (s.rdev != 0).then_some(s.rdev),
            nlink: s.nlink,
            link: s.link,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Stat>,
    /// The version of the session state the entries show: every event up to this sequence
    /// number is in them, a later one may not be (follow the events after it). Absent at a
    /// revision (`at`). A listing streamed as it is walked (recursive, or of a directory holding
    /// more than the server's `max_list_tree_entries`) reads one pinned state and ends with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    #[serde(default)]
    pub recursive: bool,
    /// A revision: `checkpoints/N`, a branch, `HEAD` or a commit id.
    #[param(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub at: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// A revision: `checkpoints/N`, a branch, `HEAD` or a commit id.
    #[param(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub at: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutParams {
    /// Permission bits of a new file, octal (default 644).
    #[param(pattern = r"^(?:0o)*\+?0*[0-7]{1,4}$")]
    pub mode: Option<String>,
    /// Create missing parent directories (default true).
    pub parents: Option<bool>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatchParams {
    /// Write the body at this byte offset.
    pub offset: Option<u64>,
    /// Cut or extend the file to this size (the body must be empty).
    pub truncate: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    #[serde(default)]
    pub recursive: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub from: String,
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub to: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    #[serde(default)]
    pub parents: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SymlinkRequest {
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    /// 1 to 4096 bytes without NUL, stored as given.
    #[schema(pattern = r"^[^\x00]+$")]
    pub target: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChmodRequest {
    /// Any path of the session, the root (`""`, `/`, `.`) included.
    #[schema(
        pattern = r"^/?$|^/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    /// Octal string (`"755"`) or number (`493`).
    #[schema(schema_with = rules::mode)]
    pub mode: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UtimesRequest {
    /// Any path of the session, the root included; a symlink's own time, never its target's.
    #[schema(
        pattern = r"^/?$|^/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    /// The new modification time, nanoseconds since the Unix epoch (0 or more).
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub mtime_ns: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChownRequest {
    /// Any path of the session, the root included; a symlink's own owner, never its target's.
    #[schema(
        pattern = r"^/?$|^/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    /// The new owner; absent leaves it as it is.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 4294967295_u64)]
    pub uid: Option<u32>,
    /// The new group; absent leaves it as it is.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 4294967295_u64)]
    pub gid: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MknodRequest {
    /// A new name in an existing directory.
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub path: String,
    /// `fifo`, `socket`, `char_device` or `block_device`.
    #[schema(example = "fifo", pattern = "^(fifo|socket|char_device|block_device)$")]
    pub kind: String,
    /// Octal string (`"644"`) or number (`420`).
    #[schema(schema_with = rules::mode)]
    pub mode: serde_json::Value,
    /// Device number of a character or block device (ignored for the others); a signed
    /// 64-bit integer's range, as the schema's `int64` says.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub rdev: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// An existing file, symlink or special file (not a directory).
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub from: String,
    /// The new name, in an existing directory.
    #[schema(
        pattern = r"^(?!/?(?:\./?)*$)/?(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.)(?:/(?:[^/\x00.][^/\x00]{0,254}|\.[^/\x00.][^/\x00]{0,253}|\.\.[^/\x00]{1,253}|\.))*/?$"
    )]
    pub to: String,
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
    #[schema(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
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
    /// 1 to 256 characters without `<`, `>` or newlines.
    #[schema(pattern = r"^[^<>\r\n]{1,256}$")]
    pub name: String,
    /// 1 to 256 characters without `<`, `>` or newlines.
    #[schema(pattern = r"^[^<>\r\n]{1,256}$")]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// Not empty or only whitespace.
    #[schema(pattern = r"\S")]
    pub message: String,
    pub author: Option<Person>,
    /// Defaults to the session's branch.
    #[schema(schema_with = rules::branch)]
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
    /// A page of the paths changed relative to the first parent (only on single-commit
    /// requests): in name order, what is below a name before the name itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Change>>,
    /// The `after` of the next page of `changes`: the path of this page's last change. Absent
    /// on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes_next: Option<String>,
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
            changes_next: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CommitList {
    pub commits: Vec<Commit>,
    pub next: Option<String>,
}

/// A page of a commit's changes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CommitParams {
    /// The `changes_next` of the previous page: the path of its last change.
    #[param(min_length = 1)]
    pub after: Option<String>,
    /// Changes per page (1 to 1000, default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// A revision: `checkpoints/N`, a branch, `HEAD` or a commit id (default: the branch).
    #[param(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub rev: Option<String>,
    /// The `next` value of the previous page: a commit id.
    #[param(pattern = "^[0-9a-fA-F]{40}$")]
    pub after: Option<String>,
    /// Page size (1 to 1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `tar` (default) or `tar.gz` (also `tgz`).
    #[param(pattern = r"^(tar|tar\.gz|tgz)$")]
    pub format: Option<String>,
    /// A revision: `checkpoints/N`, a branch, `HEAD` or a commit id.
    #[param(
        pattern = r"^(?!.*\.\.)(?!.*@\{)(?!.*//)(?![-/.])(?!.*/\.)(?!.*[/.]$)(?!.*\.lock(?:/|$))[^\x00-\x20\x7f-\x9f~^:?*\[\\]{1,64}$"
    )]
    pub at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The sessions the token may use: 1 to 1000 session ids.
    #[schema(schema_with = rules::session_ids)]
    pub sessions: Vec<String>,
    /// `read` or `write`.
    #[schema(pattern = "^(read|write)$")]
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

/// What the server checks about names, as JSON Schema, so the document states the same rules
/// the engine enforces (`core/src/sessions.rs`).
mod rules {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

    /// Label keys and tags: 1 to 128 of letters, digits and `._-/:`.
    const TOKEN: &str = "^[A-Za-z0-9._/:-]{1,128}$";

    fn token() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(TOKEN))
    }

    fn label_value() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(256))
            .pattern(Some(r"^[^\x00]*$"))
    }

    pub fn labels() -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "At most 64 labels; keys of 1 to 128 letters, digits and `._-/:`, values of at most 256 bytes without NUL.",
            ))
            .property_names(Some(token()))
            .additional_properties(Some(label_value()))
            .max_properties(Some(64))
            .into()
    }

    pub fn label_changes() -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Labels to set (at most 64; rules as for `labels`); `null` removes one.",
            ))
            .property_names(Some(token()))
            .additional_properties(Some(
                label_value().schema_type(SchemaType::from_iter([Type::String, Type::Null])),
            ))
            .max_properties(Some(64))
            .into()
    }

    pub fn tags() -> Schema {
        ArrayBuilder::new()
            .description(Some("At most 64 tags of 1 to 128 letters, digits and `._-/:`."))
            .items(token())
            .into()
    }

    pub fn tags_or_null() -> Schema {
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .description(Some(
                "At most 64 tags of 1 to 128 letters, digits and `._-/:`; `null` keeps them.",
            ))
            .items(token())
            .into()
    }

    pub fn session_ids() -> Schema {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9a-hjkmnp-tv-z]{26}$")),
            )
            .min_items(Some(1))
            .max_items(Some(1000))
            .into()
    }

    /// Permission bits: an octal string or a number up to 0o7777.
    pub fn mode() -> Schema {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(?:0o)*\+?0*[0-7]{1,4}$")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(4095)),
            )
            .into()
    }

    pub fn branch() -> Schema {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some(
                "1 to 200 of letters, digits and `._-/`; not starting with `-`, `.` or `/`, not ending with `/`, `.` or `.lock`, without `..` or `//`.",
            ))
            .pattern(Some(r"^(?![-./])(?!.*\.\.)(?!.*//)(?!.*\.lock$)(?!.*[/.]$)[A-Za-z0-9._/-]{1,200}$"))
            .into()
    }
}

/// What `POST /v1/admin/gc` does.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Only count what would be removed.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a garbage collection found and removed.
#[derive(Serialize, ToSchema)]
pub struct GcReport {
    pub dry_run: bool,
    /// Checkpoints a retention policy no longer keeps and archived sessions past their expiry,
    /// dropped before collecting (or, dry, that would be).
    pub checkpoints_expired: u64,
    pub sessions_expired: u64,
    /// Objects reachable from the roots (git objects and large blobs).
    pub reachable_objects: u64,
    /// Loose git objects looked at; those removed (or, dry, removable) and their bytes.
    pub loose_objects_found: u64,
    pub loose_objects_removed: u64,
    pub loose_bytes_removed: u64,
    /// Packing: loose objects moved into the pack written, packs written and packs it
    /// replaced, and packed objects nothing reaches left out (or, dry, that would be) with
    /// their stored bytes.
    pub loose_objects_packed: u64,
    pub packs_written: u64,
    pub packs_removed: u64,
    pub packed_objects_removed: u64,
    pub packed_bytes_removed: u64,
    /// Large-file manifests looked at; those of dead blobs removed.
    pub manifests_found: u64,
    pub manifests_removed: u64,
    /// Chunks removed, their bytes, and the chunk pack files rewritten.
    pub chunks_removed: u64,
    pub chunk_bytes_removed: u64,
    pub chunk_packs_rewritten: u64,
    /// Residual records of unreachable revisions dropped.
    pub revisions_removed: u64,
    /// Events past the activity retention dropped.
    pub events_removed: u64,
    /// Nodes of shared residual trees no session or revision names, removed, and their bytes
    /// (in the metadata database, which keeps its pages for reuse).
    pub residual_nodes_removed: u64,
    pub residual_bytes_removed: u64,
    /// Bytes freed on disk, all stores together.
    pub bytes_removed: u64,
    pub duration_ms: u64,
    /// Why nothing was removed, when something kept the collection from it (a git import
    /// running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
}

impl From<aether_core::GcReport> for GcReport {
    fn from(r: aether_core::GcReport) -> Self {
        GcReport {
            dry_run: r.dry_run,
            checkpoints_expired: r.expired.checkpoints,
            sessions_expired: r.expired.sessions,
            reachable_objects: r.reachable_objects,
            loose_objects_found: r.loose_objects_found,
            loose_objects_removed: r.loose_objects_removed,
            loose_bytes_removed: r.loose_bytes_removed,
            loose_objects_packed: r.loose_objects_packed,
            packs_written: r.packs_written,
            packs_removed: r.packs_removed,
            packed_objects_removed: r.packed_objects_removed,
            packed_bytes_removed: r.packed_bytes_removed,
            manifests_found: r.manifests_found,
            manifests_removed: r.manifests_removed,
            chunks_removed: r.chunks.chunks,
            chunk_bytes_removed: r.chunks.chunk_bytes,
            chunk_packs_rewritten: r.chunks.packs,
            revisions_removed: r.revisions_removed,
            events_removed: r.events_removed,
            residual_nodes_removed: r.residual_nodes_removed,
            residual_bytes_removed: r.residual_bytes_removed,
            bytes_removed: r.bytes_removed,
            duration_ms: r.duration_ms,
            deferred: r.deferred,
        }
    }
}
