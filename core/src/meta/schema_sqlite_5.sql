-- Version 5: the session's base mtime (what entries the residual does not name show) with
-- each revision's residual, so a restore or `fork --at` shows every mtime of the revision
-- exactly. One number per revision. Rows recorded before keep NULL: their revisions show the
-- commit time, as they did.
ALTER TABLE revision_residuals ADD COLUMN base_mtime BIGINT;
