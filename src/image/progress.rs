//! Progress of a long write: a line on a terminal, nothing in a pipe.
//!
//! The writer reports through the `Progress` trait so that a node's agent
//! can forward progress to the controller instead of drawing it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Receives progress from the writer. Calls come from one thread.
pub trait Progress {
    /// A new phase begins (`write`, `verify`), measured in bytes up to `total`.
    fn phase(&mut self, name: &'static str, total: u64);
    /// `done` bytes of the current phase are finished.
    fn update(&mut self, done: u64);
    /// The work is over (successfully or not): clean up the display.
    fn finish(&mut self);
}

/// Reports nothing: for pipes, tests and JSON output.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&mut self, _: &'static str, _: u64) {}
    fn update(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// One self-rewriting line on stderr: phase, bytes, rate and time left.
pub struct TerminalProgress {
    name: &'static str,
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl TerminalProgress {
    pub fn new() -> Self {
        TerminalProgress { name: "", total: 0, started: Instant::now(), last_draw: None, drawn: false }
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// A terminal progress line when stderr is a terminal, else nothing.
pub fn for_stderr(quiet: bool) -> Box<dyn Progress + Send> {
    if !quiet && std::io::stderr().is_terminal() {
        Box::new(TerminalProgress::new())
    } else {
        Box::new(NoProgress)
    }
}

impl Progress for TerminalProgress {
    fn phase(&mut self, name: &'static str, total: u64) {
        if self.drawn {
            eprintln!();
        }
        self.name = name;
        self.total = total;
        self.started = Instant::now();
        self.last_draw = None;
        self.drawn = false;
    }

    fn update(&mut self, done: u64) {
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now.duration_since(t) < Duration::from_millis(200)) && done < self.total {
            return;
        }
        self.last_draw = Some(now);
        self.drawn = true;
        let line = progress_line(self.name, done, self.total, now.duration_since(self.started));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line:<78}");
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `write  1.2 GiB / 4.0 GiB  30%  850 MiB/s  ETA 3s`.
pub fn progress_line(name: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let pct = if total > 0 { done as f64 * 100.0 / total as f64 } else { 100.0 };
    let eta =
        if rate > 0.0 && total > done { format!("ETA {:.0}s", (total - done) as f64 / rate) } else { String::new() };
    format!("{name:<7}{} / {}  {pct:3.0}%  {}/s  {eta}", human(done), human(total), human(rate as u64))
}

/// Bytes in binary units with one decimal.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_bytes_rate_and_eta() {
        let line = progress_line("write", 1 << 30, 4 << 30, Duration::from_secs(2));
        assert_eq!(line, "write  1.0 GiB / 4.0 GiB   25%  512.0 MiB/s  ETA 6s");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
