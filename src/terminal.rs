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
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Writes `s` to stdout as [`text`]; for commands that print a rendered text. A write that
/// fails is dropped: the command goes on, records what it judged and exits with its own code.
pub fn print(s: &str) {
    let _ = stdout().write_all(text(s).as_bytes());
}

/// `println!` for text output: the formatted line as [`text`], written as [`print`] writes.
pub fn println(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(stdout(), "{}", text(&args.to_string()));
}

/// Writes `value` to stdout as pretty JSON and a line end (JSON keeps the real values: its own
/// escaping is enough).
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let doc = serde_json::to_string_pretty(value)?;
    writeln!(stdout(), "{doc}")?;
    Ok(())
}

/// Set at the first write to a reader that has gone; what follows is dropped.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// Standard output for what a command prints. A reader that stops early (`kiln inspect --json |
/// head`) is not an error: from the first broken pipe on, what is written is dropped, so the
/// command does not panic (as `println!` does) or stop half-way (as `?` on the write would), but
/// records what it judged and exits with its own code. Every other write error is returned.
pub struct Stdout(std::io::StdoutLock<'static>);

/// The process's standard output as a [`Stdout`].
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

impl Stdout {
    fn gone<R>(&self, result: std::io::Result<R>, instead: R) -> std::io::Result<R> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                READER_GONE.store(true, Ordering::Relaxed);
                Ok(instead)
            }
            other => other,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if READER_GONE.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        let result = self.0.write(buf);
        self.gone(result, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if READER_GONE.load(Ordering::Relaxed) {
            return Ok(());
        }
        let result = self.0.flush();
        self.gone(result, ())
    }
}

/// A writer for text output: what is written reaches `W` as [`text`]. Not for JSON, whose
/// escaping of the real value is its own.
pub struct Text<W: std::io::Write>(pub W);

impl<W: Write> Write for Text<W> {
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
