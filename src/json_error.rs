//! Locating an error in a JSON file kiln did not write (NVML dumps, telemetry recordings, node
//! JSON): line, column and the field's path (`gpus[2].fabric.state`), like `toml_error` for TOML.

use std::fmt;

use serde::de::DeserializeOwned;

/// Where and why a JSON document does not read as the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based; 0 only when the parser could not say.
    pub line: usize,
    pub column: usize,
    /// The field's path, `gpus[2].fabric.state`; `(top level)` for the document itself.
    pub field: String,
    /// The parser's message, without its own position.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.line, self.column)?;
        }
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for JsonError {}

/// Deserialize `text` as `T`, or say where and why it cannot be.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let located = |path: String, e: &serde_json::Error| JsonError {
        line: e.line(),
        column: e.column(),
        field: if path.is_empty() || path == "." { "(top level)".to_string() } else { path },
        message: without_position(&e.to_string()),
    };
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| located(e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| located(String::new(), &e))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the error says where itself.
pub fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GpuInventory;

    #[test]
    fn a_type_error_deep_in_an_nvml_dump_names_line_column_and_field() {
        let node = crate::checks::testnode::hgx_b200();
        let mut doc = serde_json::to_value(&node.gpus).expect("serialize");
        doc["gpus"][2]["fabric"]["state"] = serde_json::json!(7);
        let text = serde_json::to_string_pretty(&doc).expect("text");
        let err = from_str::<GpuInventory>(&text).expect_err("type error");
        assert_eq!(err.field, "gpus[2].fabric.state");
        let at = text.match_indices("\"state\": 7").next().map(|(i, _)| i).expect("in text");
        let line = text[..at].matches('\n').count() + 1;
        assert_eq!(err.line, line, "{err}");
        assert!(err.column > 1 && err.message.contains("expected"), "{err}");
        assert_eq!(from_str::<GpuInventory>(&serde_json::to_string(&node.gpus).expect("json")), Ok(node.gpus.clone()));
        let missing = from_str::<GpuInventory>("{\"status\": \"inspected\", \"gpus\": []}").expect_err("no driver");
        assert!(missing.to_string().starts_with("field `(top level)`: missing field `driver_version`"), "{missing}");
        let trailing =
            from_str::<GpuInventory>("{\"status\": \"not_inspected\", \"reason\": \"x\"} x").expect_err("junk");
        assert_eq!((trailing.field.as_str(), trailing.column), ("(top level)", 44));
    }
}
