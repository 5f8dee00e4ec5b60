-- Version 3: the residual (empty directories, modes, mtimes) of every checkpoint and commit the
-- engine writes, keyed by commit id so a read at any revision fetches one row. Rows are written
-- once and never change; like the commits they describe they outlive a deleted session (a fork
-- may still read them) until garbage collection drops what no ref reaches.
CREATE TABLE revision_residuals (
    commit_id TEXT PRIMARY KEY,
    residual  TEXT NOT NULL
);
INSERT INTO revision_residuals (commit_id, residual)
    SELECT commit_id, residual FROM checkpoints WHERE true
    ON CONFLICT (commit_id) DO NOTHING;
ALTER TABLE checkpoints DROP COLUMN residual;
