//! Renders nodes, findings and inventory history as tables, JSON and CSV.

mod build;
pub mod burnin_section;
pub mod burnin_view;
pub mod collective_section;
pub mod columns;
mod consistency;
mod csv;
pub mod findings;
pub mod firmware_matrix;
mod html;
mod html_node;
mod html_style;
mod json;
mod model;
pub mod node_summary;
mod parts;
mod prometheus;
pub mod questions;
mod rack_build;
mod rack_model;
mod rack_text;
pub mod svg;
mod table;

#[cfg(test)]
mod tests;

pub use build::{build_report, build_report_as_of};
pub use csv::{render_csv, CSV_COLUMNS};
pub use json::render_json;
pub use model::{FindingsReport, NodeReport, Report, StoredFinding, REPORT_KIND, REPORT_SCHEMA_VERSION};
pub use table::render_table;

pub use burnin_section::{burnin_section, run_verdict, BurninRow, BurninSection, RowStatus};
pub use burnin_view::{burnin_view, load_burnin_view, BurninView};
pub use consistency::{OUTLIER_MIN_NODES, OUTLIER_PCT};
pub use html::render_html;
pub use parts::{render_parts_csv, PARTS_CSV_COLUMNS};
pub use prometheus::{label_value, render_prometheus};
pub use rack_build::{build_rack_report, BurninLoader};
pub use rack_model::{Outlier, RackNodeReport, RackReport, RmaPart, RACK_REPORT_KIND, RACK_REPORT_SCHEMA_VERSION};
pub use rack_text::{render_rack_csv, render_rack_table, RACK_CSV_COLUMNS};
