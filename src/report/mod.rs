//! Renders nodes, findings and inventory history as tables, JSON and CSV.

mod build;
mod csv;
pub mod findings;
mod json;
mod model;
pub mod node_summary;
mod table;

#[cfg(test)]
mod tests;

pub use build::build_report;
pub use csv::{render_csv, CSV_COLUMNS};
pub use json::render_json;
pub use model::{FindingsReport, NodeReport, Report, StoredFinding, REPORT_KIND, REPORT_SCHEMA_VERSION};
pub use table::render_table;
