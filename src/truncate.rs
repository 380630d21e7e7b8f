//! Input values quoted in errors, cut to a readable length: a 100 KB field in a spec or a reply
//! must not turn one error line into 100 KB of terminal output. The first [`LIMIT`] characters
//! are kept, then `... (N bytes)`.
//!
//! [`quote`] is for a message that quotes a value; [`message`] is applied to every error as it
//! is written out (`error::chain`, `CmdError::report`), so values quoted by a parser or a
//! library (serde's `invalid value: string "..."`) are cut too.

use std::borrow::Cow;

/// Characters of a value kept in an error.
pub const LIMIT: usize = 80;

/// A run of characters without a space longer than this (an unquoted value) is cut as well;
/// long enough for any path kiln names.
const WORD_LIMIT: usize = 256;

/// `s` cut to [`LIMIT`] characters, with `... (N bytes)` when it was longer.
pub fn cut(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(LIMIT) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}... ({} bytes)", &s[..end], s.len())),
    }
}

/// `s` as a quoted value in a message: `"..."` with Rust's escaping, cut to [`LIMIT`].
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(LIMIT) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &s[..end], s.len()),
    }
}

/// Every quoted span (`"..."`, `` `...` ``) of `text` longer than [`LIMIT`], and every unquoted
/// word longer than a path, cut.
pub fn message(text: &str) -> Cow<'_, str> {
    if text.len() <= LIMIT {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(4096));
    let mut changed = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '"' || c == '`' {
            if let Some(len) = closing(&rest[1..], c) {
                let inner = &rest[1..1 + len];
                match inner.char_indices().nth(LIMIT) {
                    Some((end, _)) => {
                        changed = true;
                        out.push(c);
                        out.push_str(&inner[..end]);
                        out.push(c);
                        out.push_str(&format!("... ({} bytes)", inner.len()));
                    }
                    None => out.push_str(&rest[..len + 2]),
                }
                rest = &rest[len + 2..];
                continue;
            }
        }
        if c.is_whitespace() {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '`').unwrap_or(rest.len());
        let end = if end == 0 { c.len_utf8() } else { end };
        let word = &rest[..end];
        if word.chars().nth(WORD_LIMIT).is_some() {
            changed = true;
            out.push_str(&cut(word));
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

/// Byte length of a quoted span's content up to its closing `quote` (a `"` escaped with `\` does
/// not close it); `None` when it is never closed.
fn closing(s: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_with_their_size() {
        let big = "A".repeat(100_000);
        assert_eq!(quote(&big), format!("{:?}... (100000 bytes)", "A".repeat(80)));
        assert_eq!(quote("570.86"), "\"570.86\"");
        assert_eq!(cut("Grace"), "Grace");
        let msg = format!("specs/t.toml:3:8: field `name`: {:?}: use lowercase letters", big);
        let short = message(&msg);
        assert_eq!(
            short,
            format!("specs/t.toml:3:8: field `name`: \"{}\"... (100000 bytes): use lowercase letters", "A".repeat(80))
        );
        let serde = format!("invalid value: string \"{big}\", expected a PCI id");
        assert!(message(&serde).len() < 200, "{}", message(&serde));
        let bare = format!("bad speed {big} GT/s");
        assert_eq!(message(&bare), format!("bad speed {}... (100000 bytes) GT/s", "A".repeat(80)));
        let path = format!("cannot read /sys/{}/numa_node", "d".repeat(200));
        assert!(matches!(message(&path), Cow::Borrowed(_)), "a path is kept whole");
        let escaped = format!("{:?} was refused", format!("a\"{}", "b".repeat(90)));
        assert!(message(&escaped).ends_with("(93 bytes) was refused"), "{}", message(&escaped));
        // Multibyte text is cut on a character boundary.
        assert!(cut(&"é".repeat(100)).starts_with(&"é".repeat(80)));
    }
}
