-- Version 4: where each event came from (`event::Origin`): the surface, the principal and the
-- mount that made the change. Events recorded before keep NULL: their origin is unknown.
ALTER TABLE events ADD COLUMN origin_surface TEXT;
ALTER TABLE events ADD COLUMN origin_principal TEXT;
ALTER TABLE events ADD COLUMN origin_mount TEXT;
