-- kiln inventory schema, version 9: each tray's part in a rack collective (`kiln rack burnin` on a
-- multi-tray NVLink domain). Every rank is a run of kind `collective` of its tray (in `runs`, its
-- findings in `findings`, its results per op and size in `burnin_results` and `burnin_figures`,
-- its GPUs' telemetry in `burnin_samples`, `burnin_xids` and `burnin_counters`); this table links
-- each of those runs to the rack run of kind `collective` it was part of, with how its rank ended.
CREATE TABLE rack_run_trays (
    rack_run_id    INTEGER NOT NULL REFERENCES rack_runs(id),
    run_id         INTEGER NOT NULL UNIQUE REFERENCES runs(id),
    -- The tray's rank in the collective (0 made the NCCL id).
    rank           INTEGER NOT NULL,
    -- pass, fail, error, skipped, peer_error.
    status         TEXT NOT NULL,
    -- Why, when not pass: `no NCCL ...`, `hung: ...`, `stopped by kiln after ...`.
    reason         TEXT,
    -- kiln killed the rank's process group (another rank failed, or its deadline passed).
    killed         INTEGER NOT NULL CHECK (killed IN (0, 1)),
    duration_ms    INTEGER NOT NULL,
    -- What the rank reported of itself, when it reported: its hostname, its GPUs and the
    -- communicator's, the NCCL version, and why it sampled no telemetry.
    hostname       TEXT,
    gpus           INTEGER,
    world          INTEGER,
    nccl_version   TEXT,
    telemetry_note TEXT,
    PRIMARY KEY (rack_run_id, rank)
);
