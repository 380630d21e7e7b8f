//! Renders nodes, findings and inventory history as tables, JSON and CSV.

pub mod node_summary;
