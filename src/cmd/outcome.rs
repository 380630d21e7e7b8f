//! How a command ended: its exit code and, when something failed, the one error `main` prints.
//!
//! Commands return [`CmdResult`]: `Err` when the command stopped at an error (the error's
//! class gives the exit code, [`CmdError::exit_code`]), `Ok` when it ran to the end (the exit
//! code its verdict gives, sometimes with an error that did not decide the code, such as a
//! healthcheck whose drain failed after the node was judged). `main` turns either into an
//! [`Outcome`], writes [`Outcome::report`] to stderr once and exits with [`Outcome::code`].
//! Exit codes are `crate::exit`'s, documented in `docs/exit-codes.md`.

use std::fmt;

use crate::cmd::CmdError;
use crate::exit;

/// What a command returns (or a step of one, with `T`); see the module documentation.
pub type CmdResult<T = Outcome> = Result<T, Failure>;

/// A command that stopped at an error: the typed [`CmdError`], boxed so that every command's
/// result stays one pointer wide whatever the library error inside it. Any library error a
/// [`CmdError`] variant wraps converts with `?`.
pub struct Failure(Box<CmdError>);

impl Failure {
    /// The error, to match on.
    pub fn error(&self) -> &CmdError {
        &self.0
    }

    /// The error, unboxed.
    pub fn into_error(self) -> CmdError {
        *self.0
    }

    /// The process exit code the error stands for.
    pub fn exit_code(&self) -> i32 {
        self.0.exit_code()
    }
}

impl<E: Into<CmdError>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(Box::new(e.into()))
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How a command ended: the exit code, and the error to print when one happened.
#[derive(Debug)]
#[must_use]
pub struct Outcome {
    code: i32,
    error: Option<Box<CmdError>>,
}

impl Outcome {
    /// Ran to the end; everything passed.
    pub fn ok() -> Outcome {
        Outcome { code: exit::OK, error: None }
    }

    /// Ran to the end with the exit code its result gives (a verdict: 0, 1, 3, 7; or a code a
    /// library computed for a whole rack).
    pub fn exit(code: i32) -> Outcome {
        Outcome { code, error: None }
    }

    /// The same exit code, with `error` said beside it. An error already held stays first.
    pub fn with_error(self, error: impl Into<CmdError>) -> Outcome {
        let error = match self.error {
            Some(first) => CmdError::Both(first, Box::new(error.into())),
            None => error.into(),
        };
        Outcome { code: self.code, error: Some(Box::new(error)) }
    }

    /// The process exit code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The error to print, when there is one.
    pub fn error(&self) -> Option<&CmdError> {
        self.error.as_deref()
    }

    /// What `main` writes to stderr: the error's lines, or nothing.
    pub fn report(&self) -> String {
        self.error.as_deref().map(CmdError::report).unwrap_or_default()
    }
}

impl From<CmdError> for Outcome {
    fn from(error: CmdError) -> Outcome {
        Outcome { code: error.exit_code(), error: Some(Box::new(error)) }
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        Outcome { code: failure.exit_code(), error: Some(failure.0) }
    }
}

impl From<CmdResult> for Outcome {
    fn from(result: CmdResult) -> Outcome {
        result.unwrap_or_else(Outcome::from)
    }
}
