-- Version 2: access tokens scoped to sessions (only the secret's hash is kept).
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    access      TEXT NOT NULL,
    sessions    TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
