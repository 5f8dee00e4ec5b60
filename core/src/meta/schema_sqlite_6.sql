-- Version 6: residual state shared, not copied (see `residual`). The POSIX details git cannot
-- hold live in trees of small content-addressed nodes, each stored once by its blake3 id; a
-- session names the frozen residual it shares by its root, and its overlay rows hold only what
-- changed since that freeze (with `overlay_unset` naming the frozen entries removed since). A
-- revision's record names its root (`residual` is then '') instead of listing every entry.
-- Sessions and revisions stored before keep a NULL root and their rows or lists, which load
-- as they did; a session moves to the new form at its next freeze.
-- Nodes are appended in rowid order (dense pages) and found by the unique index on their id: a
-- table keyed by the random ids themselves would leave its pages a third empty.
CREATE TABLE residual_nodes (
    seq  INTEGER PRIMARY KEY,
    id   BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
CREATE TABLE overlay_unset (
    session_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    PRIMARY KEY (session_id, path)
) WITHOUT ROWID;
ALTER TABLE sessions ADD COLUMN residual_root BLOB;
ALTER TABLE revision_residuals ADD COLUMN root BLOB;
