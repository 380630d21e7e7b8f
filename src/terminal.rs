//! Text for a terminal: strings from the machine or a peer (DMI fields, hostnames, serials, model
//! names, BMC and agent replies) may hold escape sequences that move the cursor, retitle the
//! window or hide the line a technician should read. Every text output (tables, reports, status
//! lines, notices, the error `main` prints) passes through here; JSON keeps the real value (its
//! own escaping is enough) and HTML escapes the same characters as character references.
//!
//! Escaped: every control character (C0, DEL, C1) and the Unicode bidirectional controls that
//! reorder what is shown. `\n`, `\t` and `\r` read as themselves, the rest as `\x1b` (ASCII) or
//! `\u{9b}`; printable text, including non-ASCII letters, is left alone.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// How an unsafe character is written instead.
pub fn escaped(c: char) -> String {
    match c {
        '\n' => "\\n".to_string(),
        '\t' => "\\t".to_string(),
        '\r' => "\\r".to_string(),
        c if c.is_ascii() => format!("\\x{:02x}", c as u32),
        c => format!("\\u{{{:x}}}", c as u32),
    }
}

fn escape_where(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) && !keep(c) {
            out.push_str(&escaped(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One value (a hostname, a serial) for a line of text: every unsafe character escaped, line
/// ends included, so the value stays on its line.
pub fn value(s: &str) -> Cow<'_, str> {
    escape_where(s, |_| false)
}

/// A whole rendered text (a table, a report, an error): every unsafe character escaped except
/// the line ends that lay the text out.
pub fn text(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c == '\n')
}

/// Writes `s` to stdout as [`text`]; for commands that print a rendered text.
pub fn print(s: &str) {
    print!("{}", text(s));
}

/// `println!` for text output: the formatted line as [`text`].
pub fn println(args: std::fmt::Arguments<'_>) {
    println!("{}", text(&args.to_string()));
}

/// A writer for text output: what is written reaches `W` as [`text`]. Not for JSON, whose
/// escaping of the real value is its own.
pub struct Text<W: std::io::Write>(pub W);

impl<W: std::io::Write> std::io::Write for Text<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // `write!` hands over whole `str` pieces, so a character is never split across calls.
        self.0.write_all(text(&String::from_utf8_lossy(buf)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// An unsafe character as the HTML report writes it: C0 and DEL as the visible "control picture"
/// symbols (`&#x241b;` for ESC), the rest as their code; a browser never obeys either.
pub fn html_reference(c: char) -> String {
    match c as u32 {
        n @ 0..=0x1f => format!("&#x{:x};", 0x2400 + n),
        0x7f => "&#x2421;".to_string(),
        n => format!("\\u{{{n:x}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let hostile = "gpu-a01\x1b]0;pwned\x07\x1b[2J\r\u{9b}31m\u{202e}lairesx";
        assert_eq!(value(hostile), "gpu-a01\\x1b]0;pwned\\x07\\x1b[2J\\r\\u{9b}31m\\u{202e}lairesx");
        assert_eq!(value("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(text("line one\x1b[1A\nline two\n"), "line one\\x1b[1A\nline two\n");
        assert!(matches!(value("Grace A02 — Überprüft 0x1b"), Cow::Borrowed(_)), "printable text is untouched");
        let mut out = Text(Vec::new());
        std::io::Write::write_all(&mut out, "serial \x1b[8m\n".as_bytes()).expect("write");
        assert_eq!(out.0, b"serial \\x1b[8m\n");
        assert_eq!(crate::report::svg::esc("<b>\x1b[8m"), "&lt;b&gt;&#x241b;[8m");
        assert_eq!((html_reference('\x1b'), html_reference('\u{9b}')), ("&#x241b;".into(), "\\u{9b}".into()));
    }
}
