//! `BmcError`: every way talking to a BMC can fail, each naming the BMC.
//!
//! The BMC is named as `<url> (<node>)` in every message, so a line in a rack
//! run tells the technician which box to walk to. Passwords never appear:
//! only the user name is ever put in a message.

use std::time::Duration;

use super::retry::Tries;
use super::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    /// The TLS settings could not be built (bad CA file, no system roots).
    #[error("bmc {bmc}: cannot set up TLS")]
    TlsSetup {
        bmc: String,
        #[source]
        source: TlsError,
    },
    /// The request never got an HTTP answer (refused, reset, timed out, TLS refused).
    #[error("bmc {bmc}: {method} {path} failed after {tries}")]
    Transport {
        bmc: String,
        method: &'static str,
        path: String,
        tries: Tries,
        #[source]
        source: ureq::Error,
    },
    /// The BMC answered with an error status.
    #[error("bmc {bmc}: {method} {path} answered {status} after {tries}: {message}")]
    Status { bmc: String, method: &'static str, path: String, status: u16, tries: Tries, message: String },
    /// The BMC refused the credentials (401) or the user's rights (403).
    #[error("bmc {bmc}: {method} {path} refused user {user:?} ({status}): {message}")]
    Unauthorized { bmc: String, method: &'static str, path: String, user: String, status: u16, message: String },
    /// An answer that is not the Redfish resource kiln expected.
    #[error("bmc {bmc}: {path} answered {what}")]
    BadReply { bmc: String, path: String, what: String },
    /// The resources kiln needs could not be found on this BMC.
    #[error("bmc {bmc}: {what}")]
    Discovery { bmc: String, what: String },
    /// The BMC (or this backend) cannot do what was asked.
    #[error("bmc {bmc}: {operation} is not supported {why}")]
    NotSupported { bmc: String, operation: &'static str, why: String },
    /// A change was accepted but did not show in time.
    #[error("bmc {bmc}: {what} did not happen within {}s", waited.as_secs())]
    NotObserved { bmc: String, what: String, waited: Duration },
    /// A firmware update Task ended without completing.
    #[error("bmc {bmc}: task {task} ended {state}: {messages}")]
    TaskFailed { bmc: String, task: String, state: String, messages: String },
    /// A firmware update Task did not end in time.
    #[error("bmc {bmc}: task {task} did not finish within {}s (last seen: {last})", waited.as_secs())]
    TaskDeadline { bmc: String, task: String, last: String, waited: Duration },
    /// A package is larger than the BMC takes (`UpdateService.MaxImageSizeBytes`).
    #[error("bmc {bmc}: the package is {size} bytes, more than the {max} bytes the BMC takes (MaxImageSizeBytes)")]
    TooLarge { bmc: String, size: u64, max: u64 },
    /// `ipmitool` could not be started.
    #[error("bmc {bmc}: cannot run ipmitool")]
    IpmiSpawn {
        bmc: String,
        #[source]
        source: std::io::Error,
    },
    /// `ipmitool` ran and failed.
    #[error("bmc {bmc}: ipmitool {command} failed ({status}): {stderr}")]
    IpmiFailed { bmc: String, command: String, status: String, stderr: String },
    /// `ipmitool` printed something kiln cannot read.
    #[error("bmc {bmc}: ipmitool {command} printed {output:?}, which is not what kiln expects")]
    IpmiOutput { bmc: String, command: String, output: String },
}

impl BmcError {
    /// True when the fault is in what the user gave kiln (a CA file, a
    /// fingerprint), not in the BMC: the CLI exits with BAD_INPUT then.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, BmcError::TlsSetup { .. })
    }
}
