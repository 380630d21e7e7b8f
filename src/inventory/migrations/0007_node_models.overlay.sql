-- What a reader of an older database sees of schema 7: every run's model still in its own
-- node_json, and no shared models.
CREATE TEMP TABLE node_models (
    id        INTEGER PRIMARY KEY,
    sha256    TEXT NOT NULL UNIQUE,
    node_json TEXT NOT NULL
);
CREATE TEMP VIEW runs AS SELECT *, CAST(NULL AS INTEGER) AS model_id FROM main.runs;
