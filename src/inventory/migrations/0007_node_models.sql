-- kiln inventory schema, version 7: a node model is stored once per distinct content.
-- A run points to the model it judged (`model_id`); a tray checked every day with nothing
-- changed adds a run row, its components and findings, and no second copy of its model.
-- `migrate.rs` moves the models of the runs kept here into `node_models`, leaving their
-- `node_json` empty: a run's model is `node_models.node_json` when `model_id` is set, else
-- the run's own `node_json` (never empty then).
CREATE TABLE node_models (
    id        INTEGER PRIMARY KEY,
    -- SHA-256 of node_json (lowercase hex): how a model already stored is found.
    sha256    TEXT NOT NULL UNIQUE,
    node_json TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN model_id INT REFERENCES node_models(id);
