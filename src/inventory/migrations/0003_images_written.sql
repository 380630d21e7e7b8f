-- kiln inventory schema, version 2: every image write (kiln image write --db), success or not.
-- Lifecycle-neutral: a write is recorded here, and moves no node between states by itself.

CREATE TABLE images_written (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    -- The node whose disk it was, when known (a node's agent knows; a bench write does not).
    node_id      INTEGER REFERENCES nodes(id),
    -- The device or file written, as given.
    target       TEXT NOT NULL,
    -- The image as given (path, or "standard input") and its whole-image SHA-256 when known.
    image        TEXT NOT NULL,
    image_sha256 TEXT,
    image_size   INTEGER NOT NULL,
    bytes_written INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    -- ok | failed
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    -- After a failure: untouched | wiped | preserved | wipe-failed; NULL after success.
    target_state TEXT,
    error        TEXT
);

CREATE INDEX images_written_by_target ON images_written (target, at);
