//! The report as JSON (schema in docs/json-schema.md, "report").

use super::Report;

/// Pretty-printed, with a final newline.
pub fn render_json(report: &Report) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    Ok(text)
}
