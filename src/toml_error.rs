//! Locating an error in a TOML file: byte span to line, column and field.
//!
//! An author of a spec, recipe or manifest must be told the file, the line
//! and the field. The TOML parser gives a byte span; this module turns a span
//! into a line and column and, by walking the parsed document, into the
//! dotted field it falls in (`devices[2].link.width`). Semantic checks go the
//! other way: from a field path to the span of its value.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a field path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A field path, displayed as `devices[2].link.width`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<PathSeg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if n == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Where a deserialization error points: 1-based line and column, the field
/// it is about, and the parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

/// Locate a `toml::from_str` error in `text`. When serde blames a whole array
/// for one bad element, the element is named instead.
pub fn locate(text: &str, error: &toml::de::Error) -> Located {
    let message = error.message().trim().to_string();
    let mut offset = error.span().map(|s| s.start).unwrap_or(0);
    let mut field = field_at(text, offset);
    if let Some((element, span)) = quoted_element(text, &field, &message) {
        (field, offset) = (element, span.start);
    }
    let (line, column) = line_column(text, offset);
    Located { line, column, field: field.to_string(), message }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// The innermost field whose key or value covers byte `offset`, or the top
/// level when none does (a syntax error between fields).
pub fn field_at(text: &str, offset: usize) -> FieldPath {
    let Ok(doc) = DeTable::parse(text) else {
        return FieldPath::root();
    };
    let mut best: Option<(usize, FieldPath)> = None;
    search_table(doc.get_ref(), &FieldPath::root(), offset, &mut best);
    best.map(|(_, p)| p).unwrap_or_default()
}

fn consider(span: Range<usize>, path: &FieldPath, offset: usize, best: &mut Option<(usize, FieldPath)>) {
    // An empty span (end of input) covers its own start.
    let covers = span.start <= offset && (offset < span.end || span.is_empty() && offset == span.start);
    if covers {
        let len = span.len();
        if best.as_ref().is_none_or(|(l, _)| len <= *l) {
            *best = Some((len, path.clone()));
        }
    }
}

fn search_table(table: &DeTable<'_>, path: &FieldPath, offset: usize, best: &mut Option<(usize, FieldPath)>) {
    for (key, value) in table.iter() {
        let p = path.key(key.get_ref());
        consider(key.span(), &p, offset, best);
        search_value(value, &p, offset, best);
    }
}

fn search_value(value: &Spanned<DeValue<'_>>, path: &FieldPath, offset: usize, best: &mut Option<(usize, FieldPath)>) {
    consider(value.span(), path, offset, best);
    match value.get_ref() {
        DeValue::Table(t) => search_table(t, path, offset, best),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                search_value(item, &path.index(i), offset, best);
            }
        }
        _ => {}
    }
}

/// When serde blames a whole array for one bad element (it does for custom
/// element errors), the element whose string value the message quotes first,
/// with its span; `None` when no element is quoted.
pub fn quoted_element(text: &str, path: &FieldPath, message: &str) -> Option<(FieldPath, Range<usize>)> {
    let doc = DeTable::parse(text).ok()?;
    let mut current: Option<&DeValue<'_>> = None;
    for seg in &path.0 {
        current = match (seg, current) {
            (PathSeg::Key(k), None) => doc.get_ref().get(k.as_str()).map(|v| v.get_ref()),
            (PathSeg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()).map(|v| v.get_ref()),
            (PathSeg::Index(i), Some(DeValue::Array(a))) => a.get(*i).map(|v| v.get_ref()),
            _ => None,
        };
        current?;
    }
    let DeValue::Array(items) = current? else { return None };
    let quoted = message.split('"').nth(1)?;
    items.iter().enumerate().find_map(|(i, item)| match item.get_ref() {
        DeValue::String(s) if s == quoted => Some((path.index(i), item.span())),
        _ => None,
    })
}

/// Byte span of the value at `path`, or of the nearest ancestor present. Element 0 of a
/// table is the table itself: a list of one may be written as a table
/// (`[burnin.collective.all_reduce]` for `[[burnin.collective.all_reduce]]`).
pub fn span_of(text: &str, path: &FieldPath) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut current: Option<&DeValue<'_>> = None;
    let root = doc.get_ref();
    for seg in &path.0 {
        if let (PathSeg::Index(0), Some(DeValue::Table(_))) = (seg, current) {
            continue;
        }
        let next = match (seg, current) {
            (PathSeg::Key(k), None) => root.get(k.as_str()),
            (PathSeg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (PathSeg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        match next {
            Some(v) => {
                span = Some(v.span());
                current = Some(v.get_ref());
            }
            None => break,
        }
    }
    span
}

/// Deserialize `text`, or say where and why it cannot be: the one way every TOML input
/// (specs, recipes) turns a parser error into line, column and field.
pub fn from_str_located<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Located> {
    toml::from_str(text).map_err(|e| locate(text, &e))
}

/// Place semantic problems (a field path and a message each) in `text`: line and column of the
/// field's value, or of its nearest ancestor present; 0 when not even that is found.
pub fn locate_issues(text: &str, issues: Vec<(FieldPath, String)>) -> Vec<Located> {
    issues
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = span_of(text, &path).map(|s| line_column(text, s.start)).unwrap_or((0, 0));
            Located { line, column, field: path.to_string(), message }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name = \"x\"\n\n[[devices]]\nrole = \"gpu\"\ncount = 8\n\n[[devices]]\nrole = \"nic\"\nlink = { width = 16 }\n";

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column(DOC, 0), (1, 1));
        let at = DOC.find("count").expect("in doc");
        assert_eq!(line_column(DOC, at), (5, 1));
        assert_eq!(line_column(DOC, at + 8), (5, 9));
    }

    #[test]
    fn finds_the_innermost_field_of_an_offset() {
        let at = DOC.find("16").expect("in doc");
        assert_eq!(field_at(DOC, at).to_string(), "devices[1].link.width");
        let at = DOC.find("8\n").expect("in doc");
        assert_eq!(field_at(DOC, at).to_string(), "devices[0].count");
    }

    #[test]
    fn locates_a_path_in_the_text() {
        let path = FieldPath::root().key("devices").index(1).key("link").key("width");
        let span = span_of(DOC, &path).expect("present");
        assert_eq!(&DOC[span.clone()], "16");
        assert_eq!(line_column(DOC, span.start).0, 9);
    }
}
