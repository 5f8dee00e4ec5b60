//! SQLite implementation of the metadata stores (every trait of `meta::store`): WAL mode, one writer connection, a small pool of
//! readers, versioned migrations. `synchronous=NORMAL` in WAL mode keeps every committed
//! transaction across a crash of the process (a power loss may drop the last few).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gix::ObjectId;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Access, CheckpointRecord, Event, EventStore, ListQuery, Mutation, NewEvent, NodeId, OverlayRow, OverlayStore,
    ResidualCollection, ResidualStore, RevisionResidual, RevisionRoot, RevisionStore, SessionRecord, SessionResidual,
    SessionState, SessionStore, TokenRecord, TokenStore,
};
use crate::blocking::blocking;
use crate::error::{Error, Result};
use crate::event::Origin;
use crate::ids::{SessionId, now_millis};
use crate::overlay::OverlayEntry;
use crate::store_error::{StoreError, StoreKind};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../schema_sqlite.sql")),
    (2, include_str!("../schema_sqlite_2.sql")),
    (3, include_str!("../schema_sqlite_3.sql")),
    (4, include_str!("../schema_sqlite_4.sql")),
    (5, include_str!("../schema_sqlite_5.sql")),
    (6, include_str!("../schema_sqlite_6.sql")),
    (7, include_str!("../schema_sqlite_7.sql")),
];
const READERS: usize = 4;

pub struct SqliteMetaStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

const STORE: StoreKind = StoreKind::Metadata;

/// What a SQLite failure means to the caller: busy or locked is worth a retry, a constraint is
/// a conflict, a damaged file or an undecodable row is corruption, the rest keeps its source.
fn db_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let err = match (&e, e.sqlite_error_code()) {
        (_, Some(C::DatabaseBusy | C::DatabaseLocked)) => StoreError::Unavailable {
            store: STORE,
            source: e.into(),
        },
        (_, Some(C::ConstraintViolation)) => StoreError::Conflict {
            store: STORE,
            what: "a constraint of the database refused the change".into(),
            source: Some(e.into()),
        },
        (_, Some(C::DatabaseCorrupt | C::NotADatabase)) | (rusqlite::Error::FromSqlConversionFailure(..), _) => {
            StoreError::corrupt(STORE, e.to_string())
        }
        (_, Some(C::SystemIoFailure | C::DiskFull | C::CannotOpen | C::ReadOnly | C::PermissionDenied)) => {
            StoreError::Io {
                store: STORE,
                context: "accessing the database".into(),
                source: std::io::Error::other(e),
            }
        }
        _ => StoreError::backend(STORE, e),
    };
    Error::Store(err)
}

fn encode_err(e: serde_json::Error) -> Error {
    Error::Store(StoreError::backend(STORE, e))
}

fn not_found(what: String) -> Error {
    Error::Store(StoreError::not_found(STORE, what))
}

fn corrupt(what: String) -> Error {
    Error::Store(StoreError::corrupt(STORE, what))
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
    )
    .map_err(db_err)?;
    // Room for every statement of the write and read paths (rusqlite keeps 16 by default).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .map_err(db_err)?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction().map_err(db_err)?;
        let done: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        if done.is_none() {
            tx.execute_batch(sql).map_err(db_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, now_millis()],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

impl SqliteMetaStore {
    pub fn open(path: &Path) -> Result<Self> {
        let mut writer = open_conn(path)?;
        migrate(&mut writer)?;
        Ok(SqliteMetaStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let conn = match inner.readers.lock().pop() {
                Some(c) => c,
                None => open_conn(&inner.path)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock();
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut conn = inner.writer.lock();
            let tx = conn.transaction().map_err(db_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }
}

/// `tx.execute` through the connection's statement cache: every batch runs the same few
/// statements, and preparing them each time showed in the server's profile.
fn exec(tx: &rusqlite::Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
    tx.prepare_cached(sql).and_then(|mut s| s.execute(p)).map_err(db_err)
}

/// One mutation inside the caller's transaction.
fn apply_in(tx: &rusqlite::Transaction<'_>, id: &SessionId, m: &Mutation) -> Result<i64> {
    for node in &m.nodes {
        exec(
            tx,
            "INSERT INTO residual_nodes (id, data) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            params![&node.id.0[..], &node.data[..]],
        )?;
    }
    if let Some(residual) = &m.residual {
        let n = exec(
            tx,
            "UPDATE sessions SET residual_root = ?2 WHERE id = ?1",
            params![id.as_str(), residual.root().map(|r| r.0.to_vec())],
        )?;
        if n != 1 {
            return Err(not_found(format!("session {id}")));
        }
        exec(tx, "DELETE FROM overlay_entries WHERE session_id = ?1", [id.as_str()])?;
        exec(tx, "DELETE FROM overlay_unset WHERE session_id = ?1", [id.as_str()])?;
    }
    if m.clear_overlay {
        exec(tx, "DELETE FROM overlay_entries WHERE session_id = ?1", [id.as_str()])?;
        exec(tx, "DELETE FROM overlay_unset WHERE session_id = ?1", [id.as_str()])?;
        exec(
            tx,
            "UPDATE sessions SET residual_root = NULL WHERE id = ?1",
            [id.as_str()],
        )?;
    }
    for dir in &m.remove_below {
        let (lo, hi) = below_range(dir);
        let sql = if dir.is_empty() {
            "DELETE FROM overlay_entries WHERE session_id = ?1 AND path <> ''"
        } else {
            "DELETE FROM overlay_entries WHERE session_id = ?1 AND path >= ?2 AND path < ?3"
        };
        if dir.is_empty() {
            exec(tx, sql, [id.as_str()])?;
        } else {
            exec(tx, sql, params![id.as_str(), lo, hi])?;
        }
    }
    for path in &m.remove {
        exec(
            tx,
            "DELETE FROM overlay_entries WHERE session_id = ?1 AND path = ?2",
            params![id.as_str(), path],
        )?;
    }
    upsert_entries(tx, id, &m.upsert)?;
    for path in &m.unset {
        exec(
            tx,
            "INSERT INTO overlay_unset (session_id, path) VALUES (?1, ?2) ON CONFLICT (session_id, path) DO NOTHING",
            params![id.as_str(), path],
        )?;
    }
    if let Some(rec) = &m.record {
        write_record(tx, rec, false)?;
    }
    if let Some(cp) = &m.checkpoint {
        exec(
            tx,
            "INSERT INTO checkpoints (session_id, number, commit_id, tree_id, message, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (session_id, number) DO UPDATE SET commit_id = excluded.commit_id,
               tree_id = excluded.tree_id, message = excluded.message, created_at = excluded.created_at",
            params![
                id.as_str(),
                cp.number as i64,
                oid_text(&cp.commit),
                oid_text(&cp.tree),
                cp.message,
                cp.created_at,
            ],
        )?;
    }
    for number in &m.drop_checkpoints {
        exec(
            tx,
            "DELETE FROM checkpoints WHERE session_id = ?1 AND number = ?2",
            params![id.as_str(), *number as i64],
        )?;
    }
    if let Some(rev) = &m.revision {
        exec(
            tx,
            "INSERT INTO revision_residuals (commit_id, residual, base_mtime) VALUES (?1, ?2, ?3)
             ON CONFLICT (commit_id) DO NOTHING",
            params![
                oid_text(&rev.commit),
                serde_json::to_string(&rev.residual).map_err(encode_err)?,
                rev.base_mtime,
            ],
        )?;
    }
    if let Some(rev) = &m.revision_root {
        exec(
            tx,
            "INSERT INTO revision_residuals (commit_id, residual, base_mtime, root) VALUES (?1, '', ?2, ?3)
             ON CONFLICT (commit_id) DO NOTHING",
            params![
                oid_text(&rev.commit),
                rev.base_mtime,
                rev.root.as_ref().map(|r| r.0.to_vec())
            ],
        )?;
    }
    if let Some(at) = m.touch {
        let n = exec(
            tx,
            "UPDATE sessions SET updated_at = ?2 WHERE id = ?1",
            params![id.as_str(), at],
        )?;
        if n != 1 {
            return Err(not_found(format!("session {id}")));
        }
    }
    insert_events(tx, id, &m.events)
}

fn oid_text(oid: &ObjectId) -> String {
    oid.to_hex().to_string()
}

fn parse_oid(s: &str) -> rusqlite::Result<ObjectId> {
    ObjectId::from_hex(s.as_bytes())
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn conversion<E: std::error::Error + Send + Sync + 'static>(e: E) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

const SESSION_COLUMNS: &str = "id, state, base_tree, head, branch, parent, base_mtime, created_at, updated_at, checkpoint_seq, origin_tree, \
     quota_bytes, quota_files, keep_checkpoints, keep_checkpoint_days, commit_count";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    let id: String = r.get(0)?;
    let state: String = r.get(1)?;
    let base: String = r.get(2)?;
    let head: Option<String> = r.get(3)?;
    let parent: Option<String> = r.get(5)?;
    Ok(SessionRecord {
        id: id.parse().map_err(conversion)?,
        state: SessionState::parse(&state).ok_or_else(|| conversion(corrupt(format!("session state '{state}'"))))?,
        base_tree: parse_oid(&base)?,
        head: head.as_deref().map(parse_oid).transpose()?,
        branch: r.get(4)?,
        parent: parent.map(|p| p.parse()).transpose().map_err(conversion)?,
        base_mtime: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        labels: BTreeMap::new(),
        tags: BTreeSet::new(),
        checkpoint_seq: r.get::<_, i64>(9)? as u64,
        origin_tree: r.get::<_, Option<String>>(10)?.as_deref().map(parse_oid).transpose()?,
        quota: crate::quota::Quota {
            bytes: r.get::<_, Option<i64>>(11)?.map(|n| n as u64),
            files: r.get::<_, Option<i64>>(12)?.map(|n| n as u64),
        },
        retention: crate::retention::CheckpointRetention {
            keep_last: r.get::<_, Option<i64>>(13)?.map(|n| n as u64),
            keep_days: r.get::<_, Option<i64>>(14)?.map(|n| n as u64),
        },
        commits: r.get::<_, i64>(15)? as u64,
    })
}

fn fill_labels_and_tags(conn: &Connection, rec: &mut SessionRecord) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("SELECT key, value FROM session_labels WHERE session_id = ?1")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([rec.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?;
    rec.labels = rows.collect::<rusqlite::Result<_>>().map_err(db_err)?;
    let mut stmt = conn
        .prepare_cached("SELECT tag FROM session_tags WHERE session_id = ?1")
        .map_err(db_err)?;
    let rows = stmt.query_map([rec.id.as_str()], |r| r.get(0)).map_err(db_err)?;
    rec.tags = rows.collect::<rusqlite::Result<_>>().map_err(db_err)?;
    Ok(())
}

fn write_record(tx: &rusqlite::Transaction<'_>, rec: &SessionRecord, insert: bool) -> Result<()> {
    let sql = if insert {
        "INSERT INTO sessions (id, state, base_tree, head, branch, parent, base_mtime, created_at, updated_at,
         checkpoint_seq, origin_tree, quota_bytes, quota_files, keep_checkpoints, keep_checkpoint_days,
         commit_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    } else {
        "UPDATE sessions SET state = ?2, base_tree = ?3, head = ?4, branch = ?5, parent = ?6, base_mtime = ?7,
         created_at = ?8, updated_at = ?9, checkpoint_seq = ?10, origin_tree = ?11, quota_bytes = ?12,
         quota_files = ?13, keep_checkpoints = ?14, keep_checkpoint_days = ?15, commit_count = ?16 WHERE id = ?1"
    };
    let changed = exec(
        tx,
        sql,
        params![
            rec.id.as_str(),
            rec.state.as_str(),
            oid_text(&rec.base_tree),
            rec.head.as_ref().map(oid_text),
            rec.branch,
            rec.parent.as_ref().map(|p| p.as_str().to_owned()),
            rec.base_mtime,
            rec.created_at,
            rec.updated_at,
            rec.checkpoint_seq as i64,
            rec.origin_tree.as_ref().map(oid_text),
            rec.quota.bytes.map(|n| n.min(i64::MAX as u64) as i64),
            rec.quota.files.map(|n| n.min(i64::MAX as u64) as i64),
            rec.retention.keep_last.map(|n| n.min(i64::MAX as u64) as i64),
            rec.retention.keep_days.map(|n| n.min(i64::MAX as u64) as i64),
            rec.commits.min(i64::MAX as u64) as i64,
        ],
    )?;
    if changed != 1 {
        return Err(not_found(format!("session {}", rec.id)));
    }
    exec(
        tx,
        "DELETE FROM session_labels WHERE session_id = ?1",
        [rec.id.as_str()],
    )?;
    exec(tx, "DELETE FROM session_tags WHERE session_id = ?1", [rec.id.as_str()])?;
    for (k, v) in &rec.labels {
        exec(
            tx,
            "INSERT INTO session_labels (session_id, key, value) VALUES (?1, ?2, ?3)",
            params![rec.id.as_str(), k, v],
        )?;
    }
    for t in &rec.tags {
        exec(
            tx,
            "INSERT INTO session_tags (session_id, tag) VALUES (?1, ?2)",
            params![rec.id.as_str(), t],
        )?;
    }
    Ok(())
}

/// Returns the sequence number of the last event inserted (0 when none).
fn insert_events(tx: &rusqlite::Transaction<'_>, id: &SessionId, events: &[NewEvent]) -> Result<i64> {
    let at = now_millis();
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO events (session_id, at, kind, path, detail, origin_surface, origin_principal, origin_mount)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db_err)?;
    for e in events {
        let o = &e.origin;
        stmt.execute(params![
            id.as_str(),
            at,
            e.kind.as_str(),
            e.path,
            e.detail.to_string(),
            o.surface.as_str(),
            o.principal,
            o.mount
        ])
        .map_err(db_err)?;
    }
    Ok(if events.is_empty() { 0 } else { tx.last_insert_rowid() })
}

fn upsert_entries(tx: &rusqlite::Transaction<'_>, id: &SessionId, entries: &[(String, OverlayEntry)]) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO overlay_entries (session_id, path, entry) VALUES (?1, ?2, ?3)
             ON CONFLICT (session_id, path) DO UPDATE SET entry = excluded.entry",
        )
        .map_err(db_err)?;
    for (path, entry) in entries {
        let json = serde_json::to_string(entry).map_err(encode_err)?;
        stmt.execute(params![id.as_str(), path, json]).map_err(db_err)?;
    }
    Ok(())
}

/// `[dir/, dir0)`: every path strictly below `dir` in bytewise order.
fn below_range(dir: &str) -> (String, String) {
    (format!("{dir}/"), format!("{dir}0"))
}

#[async_trait::async_trait]
impl SessionStore for SqliteMetaStore {
    async fn insert_session(
        &self,
        record: &SessionRecord,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        let record = record.clone();
        self.write(move |tx| {
            write_record(tx, &record, true)?;
            upsert_entries(tx, &record.id, &overlay)?;
            insert_events(tx, &record.id, &[event]).map(drop)
        })
        .await
    }

    async fn insert_session_sharing(
        &self,
        record: &SessionRecord,
        root: Option<NodeId>,
        overlay: Vec<(String, OverlayEntry)>,
        event: NewEvent,
    ) -> Result<()> {
        let record = record.clone();
        self.write(move |tx| {
            write_record(tx, &record, true)?;
            if let Some(root) = root {
                let stored: Option<i64> = tx
                    .query_row("SELECT 1 FROM residual_nodes WHERE id = ?1", [&root.0[..]], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(db_err)?;
                if stored.is_none() {
                    return Err(Error::Store(StoreError::conflict(
                        STORE,
                        format!("residual root {root} is no longer stored"),
                    )));
                }
                exec(
                    tx,
                    "UPDATE sessions SET residual_root = ?2 WHERE id = ?1",
                    params![record.id.as_str(), &root.0[..]],
                )?;
            }
            upsert_entries(tx, &record.id, &overlay)?;
            insert_events(tx, &record.id, &[event]).map(drop)
        })
        .await
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
            let rec = conn
                .query_row(&sql, [id.as_str()], session_from_row)
                .optional()
                .map_err(db_err)?;
            match rec {
                Some(mut rec) => {
                    fill_labels_and_tags(conn, &mut rec)?;
                    Ok(Some(rec))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_sessions(&self, query: &ListQuery) -> Result<Vec<SessionRecord>> {
        let query = query.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id > ?1");
            let mut args: Vec<String> = vec![query.after.as_ref().map(|a| a.as_str().to_owned()).unwrap_or_default()];
            if let Some(state) = query.state {
                args.push(state.as_str().to_owned());
                sql.push_str(&format!(" AND s.state = ?{}", args.len()));
            }
            for (k, v) in &query.labels {
                args.push(k.clone());
                args.push(v.clone());
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM session_labels l WHERE l.session_id = s.id AND l.key = ?{} AND l.value = ?{})",
                    args.len() - 1,
                    args.len()
                ));
            }
            sql.push_str(&format!(" ORDER BY s.id LIMIT {}", query.limit.max(1)));
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), session_from_row).map_err(db_err)?;
            let mut out: Vec<SessionRecord> = rows.collect::<rusqlite::Result<_>>().map_err(db_err)?;
            for rec in &mut out {
                fill_labels_and_tags(conn, rec)?;
            }
            Ok(out)
        })
        .await
    }

    async fn apply(&self, id: &SessionId, m: Mutation) -> Result<i64> {
        let id = id.clone();
        self.write(move |tx| apply_in(tx, &id, &m)).await
    }

    async fn apply_all(&self, id: &SessionId, ms: Vec<Mutation>) -> Result<i64> {
        let id = id.clone();
        self.write(move |tx| {
            let mut newest = 0;
            for m in &ms {
                newest = apply_in(tx, &id, m)?.max(newest);
            }
            Ok(newest)
        })
        .await
    }

    async fn delete_session(&self, id: &SessionId) -> Result<()> {
        let id = id.clone();
        self.write(move |tx| {
            for table in [
                "overlay_entries",
                "overlay_unset",
                "session_labels",
                "session_tags",
                "checkpoints",
                "events",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE session_id = ?1"), [id.as_str()])
                    .map_err(db_err)?;
            }
            let n = tx
                .execute("DELETE FROM sessions WHERE id = ?1", [id.as_str()])
                .map_err(db_err)?;
            if n == 0 {
                return Err(not_found(format!("session {id}")));
            }
            Ok(())
        })
        .await
    }
}

#[async_trait::async_trait]
impl OverlayStore for SqliteMetaStore {
    async fn load_overlay(&self, id: &SessionId) -> Result<Vec<(String, OverlayEntry)>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT path, entry FROM overlay_entries WHERE session_id = ?1 ORDER BY path")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([id.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (path, json) = row.map_err(db_err)?;
                let entry = serde_json::from_str(&json)
                    .map_err(|e| corrupt(format!("overlay entry '{path}' of session {id}: {e}")))?;
                out.push((path, entry));
            }
            Ok(out)
        })
        .await
    }

    async fn suspect_overlay_rows(&self) -> Result<Vec<OverlayRow>> {
        self.read(move |conn| {
            // Every way a key can hold an empty, `.` or `..` component or a NUL byte. One scan of
            // the primary key's index, at start only.
            let mut stmt = conn
                .prepare(
                    "SELECT session_id, path, entry FROM overlay_entries
                     WHERE path = '' OR path = '.' OR path = '..'
                        OR substr(path, 1, 1) = '/' OR substr(path, -1) = '/'
                        OR substr(path, 1, 2) = './' OR substr(path, 1, 3) = '../'
                        OR substr(path, -2) = '/.' OR substr(path, -3) = '/..'
                        OR instr(path, '//') > 0 OR instr(path, '/./') > 0 OR instr(path, '/../') > 0
                        OR instr(CAST(path AS BLOB), x'00') > 0
                     ORDER BY session_id, path",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (session, path, json) = row.map_err(db_err)?;
                // A row of no valid session id belongs to no session anyone can load.
                let Ok(session) = session.parse() else { continue };
                out.push(OverlayRow {
                    session,
                    path,
                    entry: serde_json::from_str(&json).ok(),
                });
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait::async_trait]
impl RevisionStore for SqliteMetaStore {
    async fn list_checkpoints(&self, id: &SessionId) -> Result<Vec<CheckpointRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT number, commit_id, tree_id, message, created_at FROM checkpoints WHERE session_id = ?1 ORDER BY number",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([id.as_str()], |r| {
                    Ok(CheckpointRecord {
                        number: r.get::<_, i64>(0)? as u64,
                        commit: parse_oid(&r.get::<_, String>(1)?)?,
                        tree: parse_oid(&r.get::<_, String>(2)?)?,
                        message: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_err)
        })
        .await
    }

    async fn revision_commits(&self) -> Result<Vec<ObjectId>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT commit_id FROM revision_residuals")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| parse_oid(&r.get::<_, String>(0)?))
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_err)
        })
        .await
    }

    async fn forget_revisions(&self, commits: Vec<ObjectId>) -> Result<u64> {
        self.write(move |tx| {
            let mut n = 0u64;
            for c in &commits {
                n += exec(tx, "DELETE FROM revision_residuals WHERE commit_id = ?1", [oid_text(c)])? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn revision_residual(&self, commit: &ObjectId) -> Result<Option<RevisionResidual>> {
        let commit = *commit;
        self.read(move |conn| {
            let row: Option<(String, Option<i64>)> = conn
                .prepare_cached("SELECT residual, base_mtime FROM revision_residuals WHERE commit_id = ?1")
                .and_then(|mut s| {
                    s.query_row([oid_text(&commit)], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db_err)?;
            row.map(|(json, base_mtime)| {
                // A record by root lists nothing here (see `revision_root`).
                let residual = if json.is_empty() {
                    Vec::new()
                } else {
                    serde_json::from_str(&json).map_err(|e| corrupt(format!("residual of revision {commit}: {e}")))?
                };
                Ok(RevisionResidual {
                    commit,
                    residual,
                    base_mtime,
                })
            })
            .transpose()
        })
        .await
    }

    async fn revision_root(&self, commit: &ObjectId) -> Result<Option<RevisionRoot>> {
        let commit = *commit;
        self.read(move |conn| {
            let row: Option<(Option<i64>, Option<Vec<u8>>)> = conn
                .prepare_cached(
                    "SELECT base_mtime, root FROM revision_residuals WHERE commit_id = ?1 AND residual = ''",
                )
                .and_then(|mut s| {
                    s.query_row([oid_text(&commit)], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(db_err)?;
            row.map(|(base_mtime, root)| {
                Ok(RevisionRoot {
                    commit,
                    root: root.as_deref().map(node_id).transpose()?,
                    base_mtime: base_mtime
                        .ok_or_else(|| corrupt(format!("revision {commit} has a root but no base mtime")))?,
                })
            })
            .transpose()
        })
        .await
    }
}

fn node_id(bytes: &[u8]) -> Result<NodeId> {
    NodeId::from_slice(bytes).ok_or_else(|| corrupt(format!("a residual node id of {} bytes", bytes.len())))
}

/// Every root named by a session or revision.
fn roots_in(conn: &Connection) -> Result<Vec<NodeId>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT residual_root FROM sessions WHERE residual_root IS NOT NULL
             UNION SELECT root FROM revision_residuals WHERE root IS NOT NULL",
        )
        .map_err(db_err)?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).map_err(db_err)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(node_id(&row.map_err(db_err)?)?);
    }
    Ok(out)
}

/// Every stored node reachable from a root, with its size. A node a root names but the store
/// lacks is corruption (it would fail the session or revision that names it).
fn reachable_in(conn: &Connection) -> Result<std::collections::HashMap<NodeId, u64>> {
    let mut seen = std::collections::HashMap::new();
    let mut queue = roots_in(conn)?;
    let mut stmt = conn
        .prepare_cached("SELECT data FROM residual_nodes WHERE id = ?1")
        .map_err(db_err)?;
    while let Some(id) = queue.pop() {
        if seen.contains_key(&id) {
            continue;
        }
        let data: Vec<u8> = stmt
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| corrupt(format!("residual node {id} is named but not stored")))?;
        seen.insert(id, data.len() as u64);
        queue.extend(crate::residual::children(&data)?);
    }
    Ok(seen)
}

#[async_trait::async_trait]
impl ResidualStore for SqliteMetaStore {
    async fn residual_nodes(&self, ids: Vec<NodeId>) -> Result<Vec<(NodeId, Vec<u8>)>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT data FROM residual_nodes WHERE id = ?1")
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(data) = stmt
                    .query_row([&id.0[..]], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(db_err)?
                {
                    out.push((id, data));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn session_residual(&self, id: &SessionId) -> Result<SessionResidual> {
        let id = id.clone();
        self.read(move |conn| {
            let root: Option<Vec<u8>> = conn
                .prepare_cached("SELECT residual_root FROM sessions WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
                .map_err(db_err)?
                .flatten();
            let mut stmt = conn
                .prepare_cached("SELECT path FROM overlay_unset WHERE session_id = ?1 ORDER BY path")
                .map_err(db_err)?;
            let unset = stmt
                .query_map([id.as_str()], |r| r.get::<_, String>(0))
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            Ok(SessionResidual {
                root: root.as_deref().map(node_id).transpose()?,
                unset,
            })
        })
        .await
    }

    async fn residual_roots(&self) -> Result<Vec<NodeId>> {
        self.read(roots_in).await
    }

    async fn reachable_residual_nodes(&self) -> Result<Vec<(NodeId, u64)>> {
        self.read(|conn| Ok(reachable_in(conn)?.into_iter().collect())).await
    }

    async fn residual_usage(&self) -> Result<(u64, u64)> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM residual_nodes",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(db_err)
        })
        .await
    }

    async fn collect_residual_nodes(&self, dry_run: bool) -> Result<ResidualCollection> {
        self.write(move |tx| {
            let roots = roots_in(tx)?.len() as u64;
            let reachable = reachable_in(tx)?;
            let mut all = tx
                .prepare("SELECT id, length(data) FROM residual_nodes")
                .map_err(db_err)?;
            let rows = all
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            let mut dead = Vec::new();
            let mut out = ResidualCollection {
                roots,
                reachable_nodes: reachable.len() as u64,
                ..Default::default()
            };
            for row in rows {
                let (id, len) = row.map_err(db_err)?;
                let id = node_id(&id)?;
                if !reachable.contains_key(&id) {
                    out.unreachable_nodes += 1;
                    out.unreachable_bytes += len as u64;
                    dead.push(id);
                }
            }
            drop(all);
            if !dry_run {
                for id in &dead {
                    exec(tx, "DELETE FROM residual_nodes WHERE id = ?1", [&id.0[..]])?;
                }
                out.deleted_nodes = dead.len() as u64;
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteMetaStore {
    async fn events(&self, id: &SessionId, after_seq: i64, limit: usize) -> Result<Vec<Event>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, at, kind, path, detail, origin_surface, origin_principal, origin_mount
                     FROM events WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![id.as_str(), after_seq, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at, kind, path, detail, surface, principal, mount) = row.map_err(db_err)?;
                let kind = kind.parse().map_err(|e| corrupt(format!("event {seq}: {e}")))?;
                let origin = match surface {
                    None => None,
                    Some(s) => Some(Origin {
                        surface: s.parse().map_err(|e| corrupt(format!("event {seq}: {e}")))?,
                        principal: principal.unwrap_or_default(),
                        mount,
                    }),
                };
                out.push(Event {
                    seq,
                    session: id.clone(),
                    at,
                    kind,
                    path,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    origin,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn last_event_seq(&self, id: &SessionId) -> Result<i64> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE session_id = ?1")
                .map_err(db_err)?;
            stmt.query_row([id.as_str()], |r| r.get(0)).map_err(db_err)
        })
        .await
    }

    async fn prune_events(&self, older_than: Option<i64>, keep_per_session: Option<u64>) -> Result<u64> {
        self.write(move |tx| {
            let newest = "SELECT MAX(seq) FROM events GROUP BY session_id";
            let mut n = 0u64;
            if let Some(t) = older_than {
                n += exec(
                    tx,
                    &format!("DELETE FROM events WHERE at < ?1 AND seq NOT IN ({newest})"),
                    [t],
                )? as u64;
            }
            if let Some(k) = keep_per_session {
                n += exec(
                    tx,
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER \
                     (PARTITION BY session_id ORDER BY seq DESC) AS newer FROM events) WHERE newer > ?1)",
                    [k.max(1) as i64],
                )? as u64;
            }
            Ok(n)
        })
        .await
    }

    async fn delete_events(&self, id: &SessionId) -> Result<()> {
        let id = id.clone();
        self.write(move |tx| {
            tx.execute("DELETE FROM events WHERE session_id = ?1", [id.as_str()])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait::async_trait]
impl TokenStore for SqliteMetaStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let t = token.clone();
        self.write(move |tx| {
            let sessions = serde_json::to_string(&t.sessions).map_err(encode_err)?;
            tx.execute(
                "INSERT INTO tokens (id, hash, access, sessions, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.id, t.hash, t.access.as_str(), sessions, t.description, t.created_at],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1");
            conn.query_row(&sql, [hash], token_from_row).optional().map_err(db_err)
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"))
                .map_err(db_err)?;
            let rows = stmt.query_map([], token_from_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_err)
        })
        .await
    }

    async fn delete_token(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            if tx.execute("DELETE FROM tokens WHERE id = ?1", [&id]).map_err(db_err)? == 0 {
                return Err(not_found(format!("token '{}'", id.escape_debug())));
            }
            Ok(())
        })
        .await
    }
}

const TOKEN_COLUMNS: &str = "id, hash, access, sessions, description, created_at";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let access: String = r.get(2)?;
    let sessions: String = r.get(3)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        hash: r.get(1)?,
        access: Access::parse(&access).ok_or_else(|| conversion(corrupt(format!("token access '{access}'"))))?,
        sessions: serde_json::from_str(&sessions).map_err(conversion)?,
        description: r.get(4)?,
        created_at: r.get(5)?,
    })
}

#[cfg(test)]
mod tests;
