-- What a reader of an older database sees of schema 6: the nodes as they were, under the
-- columns of version 6 (no machine identity known), and no machine events.
CREATE TEMP VIEW nodes AS
    SELECT id, hostname AS name, hostname, CAST(NULL AS TEXT) AS machine, CAST(NULL AS TEXT) AS system_uuid,
           serial, CAST(NULL AS TEXT) AS board_serial, CAST(NULL AS TEXT) AS chassis_serial,
           CAST(NULL AS INTEGER) AS tray_index, first_seen, last_seen, rack, platform, state, state_reason
    FROM main.nodes;
CREATE TEMP TABLE machine_events (
    id            INTEGER PRIMARY KEY,
    node_id       INTEGER NOT NULL,
    at            TEXT NOT NULL,
    run_id        INTEGER,
    event         TEXT NOT NULL,
    machine       TEXT NOT NULL,
    previous      TEXT,
    other_node_id INTEGER,
    message       TEXT NOT NULL
);
