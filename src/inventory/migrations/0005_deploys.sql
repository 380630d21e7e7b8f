-- kiln inventory schema, version 5: rack deployments (`kiln rack image`) and every step of every node.

-- One row per `kiln rack image` run: which image went to which rack, and how the run ended.
CREATE TABLE deploys (
    id           INTEGER PRIMARY KEY,
    -- The rack manifest's id.
    rack         TEXT NOT NULL,
    -- The artifact's recipe name and the whole-image SHA-256 its block map carries.
    image        TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    -- media | pxe | none
    boot         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    -- NULL while running, and forever for a run that was killed: its steps are still here.
    finished_at  TEXT,
    exit_code    INTEGER,
    kiln_version TEXT NOT NULL,
    actor        TEXT NOT NULL
);

-- One row per step of a node, in the order they happened. A rerun reads the node's latest row to
-- decide whether the node is already booted on the image (then it is skipped).
CREATE TABLE deploy_steps (
    id           INTEGER PRIMARY KEY,
    deploy_id    INTEGER NOT NULL REFERENCES deploys(id),
    node_id      INTEGER NOT NULL REFERENCES nodes(id),
    at           TEXT NOT NULL,
    -- boot-set | reset | agent | written | reboot | booted
    step         TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok', 'skipped', 'failed')),
    -- What was done, or why it was skipped, or the cause of the failure.
    detail       TEXT NOT NULL,
    image_sha256 TEXT NOT NULL
);
CREATE INDEX deploy_steps_by_node ON deploy_steps(node_id, id);

-- Steps are history: like lifecycle events, never changed or removed.
CREATE TRIGGER deploy_steps_no_update BEFORE UPDATE ON deploy_steps
BEGIN SELECT RAISE(ABORT, 'deploy_steps is append-only'); END;
CREATE TRIGGER deploy_steps_no_delete BEFORE DELETE ON deploy_steps
BEGIN SELECT RAISE(ABORT, 'deploy_steps is append-only'); END;
