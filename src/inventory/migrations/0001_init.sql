-- kiln inventory schema, version 1: nodes, runs, component snapshots, findings, lifecycle events.
-- Timestamps are RFC 3339 UTC with milliseconds (2025-01-31T12:00:00.000Z), so text order is time order.

CREATE TABLE nodes (
    id          INTEGER PRIMARY KEY,
    hostname    TEXT NOT NULL UNIQUE,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    rack        TEXT,
    platform    TEXT,
    -- DMI product serial: the serial on the chassis label.
    serial      TEXT,
    -- Lifecycle state name (enrolled, inspected, ..., failed, quarantined) and, for
    -- failed and quarantined, the reason. Changed only together with an event below.
    state        TEXT NOT NULL DEFAULT 'enrolled',
    state_reason TEXT
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    node_id      INTEGER NOT NULL REFERENCES nodes(id),
    kind         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    kiln_version TEXT NOT NULL,
    platform     TEXT,
    -- pass, fail, error; NULL for runs that judge nothing (inspect).
    verdict      TEXT CHECK (verdict IN ('pass', 'fail', 'error')),
    exit_code    INTEGER NOT NULL,
    -- The whole Node JSON as inspected, to answer later questions about this run.
    node_json    TEXT NOT NULL,
    -- Who or what ran it: a user name or a tool; never a credential.
    actor        TEXT NOT NULL
);
CREATE INDEX runs_by_node ON runs(node_id, started_at);

CREATE TABLE components (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER NOT NULL REFERENCES runs(id),
    node_id  INTEGER NOT NULL REFERENCES nodes(id),
    kind     TEXT NOT NULL,
    slot     TEXT,
    address  TEXT,
    vendor   TEXT,
    model    TEXT,
    serial   TEXT,
    firmware TEXT,
    -- JSON object with what the columns above do not hold; NULL when empty.
    extra    TEXT
);
CREATE INDEX components_by_run ON components(run_id);
CREATE INDEX components_by_serial ON components(serial) WHERE serial IS NOT NULL;

CREATE TABLE findings (
    id                 INTEGER PRIMARY KEY,
    run_id             INTEGER NOT NULL REFERENCES runs(id),
    "check"            TEXT NOT NULL,
    outcome            TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'skipped', 'error')),
    severity           TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    component_label    TEXT NOT NULL,
    component_kind     TEXT NOT NULL,
    component_address  TEXT,
    component_gpu_index INTEGER,
    component_serial   TEXT,
    component_slot     TEXT,
    component_name     TEXT,
    expected           TEXT,
    actual             TEXT,
    message            TEXT NOT NULL,
    action             TEXT
);
CREATE INDEX findings_by_run ON findings(run_id);

CREATE TABLE lifecycle_events (
    id          INTEGER PRIMARY KEY,
    node_id     INTEGER NOT NULL REFERENCES nodes(id),
    at          TEXT NOT NULL,
    -- State names as in nodes.state; from_state is NULL for the event that enrolls the node.
    -- The reasons are those a failed or quarantined state carries.
    from_state  TEXT,
    from_reason TEXT,
    to_state    TEXT NOT NULL,
    to_reason   TEXT,
    actor       TEXT NOT NULL,
    cause       TEXT NOT NULL,
    -- The run that caused the event, when a run did.
    run_id      INTEGER REFERENCES runs(id)
);
CREATE INDEX lifecycle_events_by_node ON lifecycle_events(node_id, id);

-- The event log is history: it is appended to, never rewritten.
CREATE TRIGGER lifecycle_events_no_update BEFORE UPDATE ON lifecycle_events
BEGIN
    SELECT RAISE(ABORT, 'lifecycle_events is append-only');
END;
CREATE TRIGGER lifecycle_events_no_delete BEFORE DELETE ON lifecycle_events
BEGIN
    SELECT RAISE(ABORT, 'lifecycle_events is append-only');
END;
