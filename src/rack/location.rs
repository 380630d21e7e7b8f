//! Turns a byte span in a TOML document into what a person looks for: a line number and a field path.

/// Line (1-based) of a byte offset in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The field path (`nodes[1].ssh_port`, `credentials.bmc_user`) for an error
/// at `offset`. The table comes from the nearest header at or above the line;
/// the key from the serde message when it names one in backticks ("unknown
/// field `x`", "missing field `x`"), else from the `key =` on the line.
pub(crate) fn field_at(text: &str, offset: usize, message: &str) -> String {
    let line = line_of(text, offset);
    let mut section = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut key_on_line = None;
    for (i, raw) in text.lines().enumerate() {
        if i + 1 > line {
            break;
        }
        let trimmed = raw.trim();
        if let Some(name) = trimmed.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let index = match arrays.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    arrays.push((name.clone(), 1));
                    0
                }
            };
            section = format!("{name}[{index}]");
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_string();
        } else if i + 1 == line {
            key_on_line = trimmed.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
        }
    }
    let named = if message.starts_with("unknown field") || message.starts_with("missing field") {
        message.split('`').nth(1).map(str::to_string)
    } else {
        None
    };
    match (named.or(key_on_line), section.is_empty()) {
        (Some(key), true) => key,
        (Some(key), false) => format!("{section}.{key}"),
        (None, false) => section,
        (None, true) => "(top level)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[rack]\nid = \"r1\"\n\n[[nodes]]\nname = \"a\"\n\n[[nodes]]\nname = \"b\"\nssh_port = \"x\"\n";

    #[test]
    fn names_the_array_element_and_key() {
        let offset = DOC.find("\"x\"").expect("offset");
        assert_eq!(line_of(DOC, offset), 9);
        assert_eq!(field_at(DOC, offset, "invalid type: string \"x\", expected u16"), "nodes[1].ssh_port");
    }

    #[test]
    fn prefers_the_field_named_in_the_message() {
        let offset = DOC.find("[[nodes]]").expect("offset");
        assert_eq!(field_at(DOC, offset, "missing field `address`"), "nodes[0].address");
        let offset = DOC.find("id").expect("offset");
        assert_eq!(field_at(DOC, offset, "unknown field `idd`, expected one of"), "rack.idd");
    }
}
