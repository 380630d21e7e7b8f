-- kiln inventory schema, version 6: a node is the machine in its place, and its hostname is data.
-- Two machines that answer to the same hostname are two nodes. `migrate.rs` fills the identity
-- columns of the nodes kept here from each node's newest recorded model.

-- The rebuild drops the old table under the references runs, components and the others hold:
-- they are checked when the migration commits, when every node is back under its own id.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE nodes_before_6 AS SELECT * FROM nodes;
DROP TABLE nodes;

CREATE TABLE nodes (
    id           INTEGER PRIMARY KEY,
    -- What the node is called: its rack manifest name, else the hostname it first reported,
    -- else its serial. Not unique: two machines may answer to the same hostname.
    name         TEXT NOT NULL,
    -- The hostname the node last reported; NULL when it reported none.
    hostname     TEXT,
    -- The key of the machine now in this node's place (model::MachineIdentity::key:
    -- uuid:..., serial:..., board:...); NULL when nothing identifies it. Not unique: a machine
    -- moved keeps its key in its old place until that place reports again, and cloned DMI exists.
    machine      TEXT,
    -- What identified it, as last read: DMI system UUID, system and board serial, and on an
    -- NVL72 tray the NVML chassis serial and tray index.
    system_uuid  TEXT,
    serial       TEXT,
    board_serial TEXT,
    chassis_serial TEXT,
    tray_index   INT,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    rack         TEXT,
    platform     TEXT,
    state        TEXT NOT NULL DEFAULT 'enrolled',
    state_reason TEXT
);
INSERT INTO nodes (id, name, hostname, serial, first_seen, last_seen, rack, platform, state, state_reason)
    SELECT id, hostname, hostname, serial, first_seen, last_seen, rack, platform, state, state_reason
    FROM temp.nodes_before_6;
DROP TABLE temp.nodes_before_6;
CREATE INDEX nodes_by_name ON nodes(name);
CREATE INDEX nodes_by_serial ON nodes(serial) WHERE serial IS NOT NULL;
CREATE INDEX nodes_by_machine ON nodes(machine) WHERE machine IS NOT NULL;

-- Which machine stood in a node's place, and when that changed: the history a swap or a move
-- leaves. Append-only, like lifecycle events.
CREATE TABLE machine_events (
    id            INTEGER PRIMARY KEY,
    node_id       INTEGER NOT NULL REFERENCES nodes(id),
    at            TEXT NOT NULL,
    -- The run that saw it, when a run did.
    run_id        INTEGER REFERENCES runs(id),
    -- arrived: a machine is in this place now: the first one seen here, or one that replaced
    -- `previous`. (More kinds may follow; readers keep what they do not know as text.)
    event         TEXT NOT NULL CHECK (event = 'arrived'),
    -- The machine in the place after the event, and before it (NULL for the first).
    machine       TEXT NOT NULL,
    previous      TEXT,
    -- The last other place the machine arrived in before this one: where it came from.
    other_node_id INTEGER REFERENCES nodes(id),
    message       TEXT NOT NULL
);
CREATE INDEX machine_events_by_node ON machine_events(node_id, id);
CREATE INDEX machine_events_by_machine ON machine_events(machine, id);
CREATE TRIGGER machine_events_no_update BEFORE UPDATE ON machine_events
BEGIN SELECT RAISE(ABORT, 'machine_events is append-only'); END;
CREATE TRIGGER machine_events_no_delete BEFORE DELETE ON machine_events
BEGIN SELECT RAISE(ABORT, 'machine_events is append-only'); END;
