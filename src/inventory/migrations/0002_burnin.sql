-- Burn-in results and telemetry of one run (kiln burnin), keyed by runs(id).
-- Findings of the run go in the run's findings like every other command's.

CREATE TABLE burnin_runs (
    run_id          INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    report_version  INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    duration_s      REAL NOT NULL,
    tests           TEXT NOT NULL,            -- comma-separated, as requested
    gemm_dtype      TEXT NOT NULL,
    platform        TEXT NOT NULL,
    platform_source TEXT NOT NULL,
    gpu_access      TEXT NOT NULL,            -- available | unavailable | not_requested
    gpu_reason      TEXT,                     -- why GPU tests did not run
    driver_version  TEXT,
    verdict         TEXT NOT NULL CHECK (verdict IN ('pass', 'fail', 'error')),
    incomplete      INTEGER NOT NULL CHECK (incomplete IN (0, 1)),
    inject_fault    TEXT                      -- set only by test-only fault injection
);

CREATE TABLE burnin_results (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    test            TEXT NOT NULL,
    gpu_index       INTEGER,
    gpu_pci_address TEXT,
    gpu_serial      TEXT,
    gpu_uuid        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('ran', 'skipped', 'error')),
    reason          TEXT,                     -- skip reason or error message
    applicable      INTEGER,                  -- for skipped: 0 = does not apply here
    started_unix_ms INTEGER NOT NULL,
    seconds         REAL NOT NULL,
    data_error_count INTEGER NOT NULL,
    notes           TEXT NOT NULL             -- newline-separated
);
CREATE INDEX burnin_results_run ON burnin_results(run_id);
CREATE INDEX burnin_results_serial ON burnin_results(gpu_serial);

CREATE TABLE burnin_figures (
    result_id       INTEGER NOT NULL REFERENCES burnin_results(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    value           REAL NOT NULL,
    unit            TEXT NOT NULL,
    peer_gpu_index  INTEGER,
    min_value       REAL,
    expected_value  REAL,
    threshold_reason TEXT,
    samples         TEXT                      -- JSON array of the samples the value is the median of
);
CREATE INDEX burnin_figures_result ON burnin_figures(result_id);

CREATE TABLE burnin_data_errors (
    result_id       INTEGER NOT NULL REFERENCES burnin_results(id) ON DELETE CASCADE,
    phase           TEXT NOT NULL,
    location        TEXT NOT NULL,
    device_address  TEXT,
    byte_offset     INTEGER NOT NULL,
    expected        TEXT NOT NULL,
    actual          TEXT NOT NULL
);

CREATE TABLE burnin_samples (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    gpu_index       INTEGER NOT NULL,
    gpu_serial      TEXT,
    at_unix_ms      INTEGER NOT NULL,
    temperature_c   INTEGER,
    power_w         REAL,
    sm_clock_mhz    INTEGER,
    mem_clock_mhz   INTEGER,
    throttle_reasons INTEGER,                 -- NVML clocks-event reason bits
    ecc_volatile_corrected INTEGER,
    ecc_volatile_uncorrected INTEGER,
    pcie_replay     INTEGER,
    nvlink_errors   INTEGER
);
CREATE INDEX burnin_samples_run_gpu ON burnin_samples(run_id, gpu_index, at_unix_ms);

CREATE TABLE burnin_xids (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    gpu_index       INTEGER NOT NULL,
    at_unix_ms      INTEGER NOT NULL,
    xid             INTEGER NOT NULL
);

-- Counters read before and after the run, per GPU.
CREATE TABLE burnin_counters (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    gpu_index       INTEGER NOT NULL,
    phase           TEXT NOT NULL CHECK (phase IN ('before', 'after')),
    ecc_volatile_uncorrected INTEGER,
    ecc_volatile_corrected INTEGER,
    remap_pending   INTEGER,
    remap_failure   INTEGER,
    pcie_replay     INTEGER,
    nvlink_errors   INTEGER,
    xid_watch       TEXT NOT NULL,            -- watched | not_supported | failed
    problems        TEXT NOT NULL             -- newline-separated
);
