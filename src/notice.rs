//! What kiln tells the person at the terminal that is neither the command's result (stdout) nor
//! its error (returned to `main`): warnings, notes, where a long command can be reached, and
//! progress on a terminal.
//!
//! Commands say these through a [`Notices`] sink; only [`Stderr`] writes them, in one format:
//! `kiln: warning: ...`, `kiln: note: ...`, `kiln: ...`. Progress (lines that stay, and the one
//! status line rewritten in place) is shown only when stderr is a terminal, so a pipeline's
//! stderr holds notices and the error, never progress.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// One thing to tell the user that does not decide the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Something the user should act on or know, though the command went on
    /// (a change that goes unlogged).
    Warning(&'a str),
    /// A fact about how the work was done (the image writer fell back to buffered I/O).
    Note(&'a str),
    /// What a long-running command is doing or where it can be reached (the deploy
    /// controller's address).
    Status(&'a str),
}

impl Notice<'_> {
    /// The line as the user reads it, without the line end.
    pub fn line(&self) -> String {
        let line = match self {
            Notice::Warning(text) => format!("kiln: warning: {text}"),
            Notice::Note(text) => format!("kiln: note: {text}"),
            Notice::Status(text) => format!("kiln: {text}"),
        };
        crate::terminal::value(&line).into_owned()
    }
}

/// Where commands send notices and progress. `Sync`: rack commands report progress from the
/// threads that run the nodes.
pub trait Notices: Sync {
    /// Says `notice`, always (terminal or pipe).
    fn notice(&self, notice: Notice<'_>);
    /// True when progress is shown (stderr is a terminal).
    fn shows_progress(&self) -> bool;
    /// A progress line that stays (a burn-in test started, a node finished); shown only on a
    /// terminal, above the status line.
    fn progress(&self, line: &str);
    /// The one status line at the bottom, rewritten in place; shown only on a terminal.
    fn status(&self, line: &str);
    /// Clears the status line.
    fn clear_status(&self);
}

/// Erase the terminal line the cursor is on.
const ERASE_LINE: &str = "\r\x1b[K";

/// The real sink: standard error. Progress goes only to a terminal.
pub struct Stderr {
    terminal: bool,
    /// Serialises writes from several threads so lines never interleave.
    lock: Mutex<()>,
}

impl Stderr {
    pub fn new() -> Self {
        Stderr { terminal: std::io::stderr().is_terminal(), lock: Mutex::new(()) }
    }

    fn write(&self, text: &str) {
        let _guard = self.lock.lock();
        let mut err = std::io::stderr().lock();
        // Nothing sensible is left to do when stderr itself cannot be written.
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    }
}

impl Default for Stderr {
    fn default() -> Self {
        Stderr::new()
    }
}

impl Notices for Stderr {
    fn notice(&self, notice: Notice<'_>) {
        // On a terminal a status line may be showing: erase it first.
        let erase = if self.terminal { ERASE_LINE } else { "" };
        self.write(&format!("{erase}{}\n", notice.line()));
    }

    fn shows_progress(&self) -> bool {
        self.terminal
    }

    fn progress(&self, line: &str) {
        if self.terminal {
            self.write(&format!("{ERASE_LINE}{}\n", crate::terminal::value(line)));
        }
    }

    fn status(&self, line: &str) {
        if self.terminal {
            self.write(&format!("{ERASE_LINE}{}", crate::terminal::value(line)));
        }
    }

    fn clear_status(&self) {
        if self.terminal {
            self.write(ERASE_LINE);
        }
    }
}

/// A sink that keeps what it was told, for tests: notices as their lines, progress as
/// `progress: LINE`, status lines as `status: LINE`.
#[derive(Default)]
pub struct Recorder {
    /// Whether to behave as a terminal (keep progress) or a pipe (drop it).
    pub terminal: bool,
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    /// A recorder that behaves as a pipe: progress is dropped.
    pub fn pipe() -> Self {
        Recorder::default()
    }

    /// A recorder that behaves as a terminal: progress is kept.
    pub fn terminal() -> Self {
        Recorder { terminal: true, lines: Mutex::new(Vec::new()) }
    }

    /// Everything recorded so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

impl Notices for Recorder {
    fn notice(&self, notice: Notice<'_>) {
        self.push(notice.line());
    }

    fn shows_progress(&self) -> bool {
        self.terminal
    }

    fn progress(&self, line: &str) {
        if self.terminal {
            self.push(format!("progress: {line}"));
        }
    }

    fn status(&self, line: &str) {
        if self.terminal {
            self.push(format!("status: {line}"));
        }
    }

    fn clear_status(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_the_same_everywhere_and_progress_stays_off_a_pipe() {
        assert_eq!(Notice::Warning("x is not logged").line(), "kiln: warning: x is not logged");
        assert_eq!(Notice::Note("buffered I/O").line(), "kiln: note: buffered I/O");
        assert_eq!(Notice::Status("controller at http://h:1").line(), "kiln: controller at http://h:1");
        let pipe = Recorder::pipe();
        pipe.progress("gemm on GPU 0");
        pipe.status("1/2 done");
        pipe.notice(Notice::Warning("w"));
        assert_eq!(pipe.lines(), ["kiln: warning: w"]);
        let tty = Recorder::terminal();
        tty.progress("gemm on GPU 0");
        tty.status("1/2 done");
        assert_eq!(tty.lines(), ["progress: gemm on GPU 0", "status: 1/2 done"]);
    }
}
