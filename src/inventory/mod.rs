//! The SQLite inventory: schema, migrations and all SQL. Nothing else writes SQL.
pub mod burnin;
