-- Version 7: usage, quotas and retention. `origin_tree` is the tree a fork started from (its parent's
-- state then): what it shares with its parent. NULL for a session that started from nothing of
-- another session's (empty, an import, a template), and for sessions stored before. The quota
-- columns are NULL when no limit is set, the retention columns when the session follows the
-- server's policy of checkpoints.
ALTER TABLE sessions ADD COLUMN origin_tree TEXT;
ALTER TABLE sessions ADD COLUMN quota_bytes BIGINT;
ALTER TABLE sessions ADD COLUMN quota_files BIGINT;
ALTER TABLE sessions ADD COLUMN keep_checkpoints BIGINT;
ALTER TABLE sessions ADD COLUMN keep_checkpoint_days BIGINT;
ALTER TABLE sessions ADD COLUMN commit_count BIGINT NOT NULL DEFAULT 0;
