-- Version 7: usage and quotas. `origin_tree` is the tree a fork started from (its parent's
-- state then): what it shares with its parent. NULL for a session that started from nothing of
-- another session's (empty, an import, a template), and for sessions stored before. The quota
-- columns are NULL when no limit is set.
ALTER TABLE sessions ADD COLUMN origin_tree TEXT;
ALTER TABLE sessions ADD COLUMN quota_bytes BIGINT;
ALTER TABLE sessions ADD COLUMN quota_files BIGINT;
