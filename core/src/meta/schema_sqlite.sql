-- Version 1 of the metadata schema. Kept to SQL that PostgreSQL accepts as well, except the
-- events key (BIGSERIAL there). Paths compare bytewise (BINARY here, COLLATE "C" there).
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    base_tree      TEXT NOT NULL,
    head           TEXT,
    branch         TEXT NOT NULL,
    parent         TEXT,
    base_mtime     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    checkpoint_seq BIGINT NOT NULL
);
CREATE INDEX sessions_state ON sessions (state, id);

CREATE TABLE session_labels (
    session_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (session_id, key)
);
CREATE INDEX session_labels_kv ON session_labels (key, value, session_id);

CREATE TABLE session_tags (
    session_id TEXT NOT NULL,
    tag        TEXT NOT NULL,
    PRIMARY KEY (session_id, tag)
);

CREATE TABLE overlay_entries (
    session_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    entry      TEXT NOT NULL,
    PRIMARY KEY (session_id, path)
);

CREATE TABLE checkpoints (
    session_id TEXT NOT NULL,
    number     BIGINT NOT NULL,
    commit_id  TEXT NOT NULL,
    tree_id    TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    residual   TEXT NOT NULL,
    PRIMARY KEY (session_id, number)
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    path       TEXT,
    detail     TEXT NOT NULL
);
CREATE INDEX events_session ON events (session_id, seq);
