-- kiln inventory schema, version 4: rack-level runs with their findings.

-- One row per `kiln rack inspect|validate|burnin`: the rack step as a whole. Each node's own run
-- is in `runs`; this holds what only shows across nodes (rack checks) and how each node ended.
CREATE TABLE rack_runs (
    id           INTEGER PRIMARY KEY,
    -- The rack manifest's id.
    rack         TEXT NOT NULL,
    -- The step: inspect, validate, burnin.
    kind         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    kiln_version TEXT NOT NULL,
    -- Verdict of the rack findings alone: pass, fail, error.
    verdict      TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'error')),
    -- The exit code `kiln rack` gave for the whole step.
    exit_code    INTEGER NOT NULL,
    -- JSON object: node name to its status in this step (pass, fail, error, skipped, peer_error).
    node_status  TEXT NOT NULL,
    actor        TEXT NOT NULL
);
CREATE INDEX rack_runs_by_rack ON rack_runs(rack, started_at);

-- Findings of a rack run, in the same shape as `findings`.
CREATE TABLE rack_findings (
    id                  INTEGER PRIMARY KEY,
    rack_run_id         INTEGER NOT NULL REFERENCES rack_runs(id),
    "check"             TEXT NOT NULL,
    outcome             TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'skipped', 'error')),
    severity            TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    component_label     TEXT NOT NULL,
    component_kind      TEXT NOT NULL,
    component_address   TEXT,
    component_gpu_index INTEGER,
    component_serial    TEXT,
    component_slot      TEXT,
    component_name      TEXT,
    expected            TEXT,
    actual              TEXT,
    message             TEXT NOT NULL,
    action              TEXT
);
CREATE INDEX rack_findings_by_run ON rack_findings(rack_run_id);
