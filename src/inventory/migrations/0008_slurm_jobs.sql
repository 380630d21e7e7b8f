-- kiln inventory schema, version 6: burn-in run as Slurm jobs (`kiln rack burnin --via slurm`).

-- One row per job submitted for a node, written as soon as sbatch returns its id (before any
-- wait), so that a controller started again picks the job up instead of submitting another.
CREATE TABLE slurm_jobs (
    id           INTEGER PRIMARY KEY,
    node_id      INTEGER NOT NULL REFERENCES nodes(id),
    -- The rack manifest's id.
    rack         TEXT NOT NULL,
    -- Slurm's job id and name (kiln-burnin-<rack>-<node>).
    job_id       INTEGER NOT NULL,
    job_name     TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    -- submitted while kiln follows it; then Slurm's final state (COMPLETED, FAILED, CANCELLED,
    -- TIMEOUT, NODE_FAIL, ...) or lost (Slurm forgot it and it left no result on the node).
    state        TEXT NOT NULL,
    -- kiln's exit code on the node, when the job ran it to its end.
    exit_code    INTEGER,
    -- NULL while the job is open: a rerun follows every open job of its rack.
    finished_at  TEXT,
    -- The burn-in run recorded from the job's JSON.
    run_id       INTEGER REFERENCES runs(id),
    -- Why the job did not give a run (cancelled, timed out, no result).
    reason       TEXT
);
CREATE INDEX slurm_jobs_by_node ON slurm_jobs(node_id, id);
