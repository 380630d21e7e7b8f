//! The SQLite inventory: schema, migrations and all SQL. Nothing else writes SQL.

mod bench;
pub mod burnin;
mod burnin_query;
mod collective;
mod components;
mod db;
mod deploy;
mod diff;
mod error;
mod finding_rows;
mod firmware;
mod firmware_check;
mod history;
mod images;
mod lifecycle;
mod machine;
pub mod migrate;
mod models;
mod note;
mod query;
mod rack;
mod record;
mod slurm_jobs;
mod timestamp;

#[cfg(test)]
pub(crate) mod tests;

pub use bench::{record_inventories, record_site, BenchStats, SiteStats, TRAYS_PER_RACK};
pub use burnin_query::{BurninFigureRecord, BurninRecord, BurninResultRecord, BurninResultStatus, BurninSampleRecord};
pub use collective::{CollectiveTrayRecord, CollectiveTrayRow, COLLECTIVE_RUN};
pub use components::{components_of, ComponentRecord};
pub use db::{db_path, Inventory, DEFAULT_BUSY_TIMEOUT, DEFAULT_DB_PATH};
pub use deploy::{deploy_failure_reason, DeployId, DeployStart, DeployStep, DeployStepRow, StepOutcome};
pub use diff::{diff_components, Change, ComponentChange};
pub use error::InventoryError;
pub use firmware::{FirmwareReading, BMC_FIRMWARE_RUN};
pub use firmware_check::{FirmwareCheckRecord, FIRMWARE_CHECK_RUN};
pub use history::{ExportedNode, PartStay, SerialConflict, SERIAL_UNIQUE};
pub use images::{ImageWrite, ImageWriteRow};
pub use lifecycle::LifecycleEvent;
pub use machine::MachineEvent;
pub use query::{NodeRow, RunChanges, RunRow, SerialSighting};
pub use rack::{RackRunId, RackRunRecord, RackRunRow};
pub use record::{NodeId, RunId, RunLifecycle, RunRecord};
pub use slurm_jobs::{SlurmJobEnd, SlurmJobRow, SLURM_JOB_OPEN};
pub use timestamp::{format_timestamp, now, parse_time, TIME_FORMS};
