//! Every way a command fails, as one typed error: its exit code and its text for stderr are
//! decided here, once ([`CmdError::exit_code`], [`CmdError::report`]); `main` prints it.
//!
//! Each variant wraps the library's own `thiserror` error as its cause; `anyhow` appears only as
//! [`CmdError::Internal`], kiln's own failures (its stdout, its output files, a bug).

use std::path::PathBuf;

use crate::burnin::options::OptionsError;
use crate::burnin::run::BurninError;
use crate::checks::detect::DetectError;
use crate::checks::SpecError;
use crate::cmd::image::ImageSourceError;
use crate::cmd::validate::{NodeFileError, SelectError};
use crate::deploy::{AgentError, DeployError, WriterLost};
use crate::error::chain;
use crate::exit;
use crate::fleet::{BinaryError, TrustError};
use crate::handoff::KubeError;
use crate::hw::capture::CaptureError;
use crate::hw::source::OpenError;
use crate::image::pxe::PxeError;
use crate::image::serve::ServeError;
use crate::image::{BuildError, RecipeError, WriteError, WriteFailure};
use crate::inventory::InventoryError;

/// Every way a command fails, each with the library's typed error as its cause. The exit code
/// of each is decided in one place, [`CmdError::exit_code`]; its text in one place,
/// [`CmdError::report`].
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// Flags or arguments that do not fit together, which clap cannot judge (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A flag's value that names something unusable (a directory that is not one, a file that
    /// does not exist), with the flag and the value in the message (exit 4).
    #[error("{0}")]
    BadInput(String),

    /// The node to inspect (`--root`) could not be opened (exit 4).
    #[error(transparent)]
    Source(#[from] OpenError),
    /// A node file (`kiln validate --node`) could not be read (exit 4).
    #[error(transparent)]
    NodeFile(#[from] NodeFileError),
    /// A platform spec or spec directory is malformed (exit 4). Every issue is printed.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No spec could be chosen: an unknown `--platform`, no fallback (exit 4).
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// A rack manifest is malformed (exit 4).
    #[error(transparent)]
    Manifest(#[from] crate::rack::ManifestError),
    /// `--nodes` names a node the manifest does not have (exit 2).
    #[error(transparent)]
    RackNodes(crate::rack::ManifestError),

    /// The inventory could not be opened, read or written (exit 5); a node it does not know
    /// is a mistake in the invocation (exit 2), a move the lifecycle refuses a failure (exit 1).
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// As `Inventory`, saying what was being done (which node, which database).
    #[error("{doing}")]
    InventoryDoing {
        doing: String,
        #[source]
        source: InventoryError,
    },

    /// `kiln burnin`'s flags do not parse (exit 2).
    #[error(transparent)]
    BurninOptions(#[from] OptionsError),
    /// The burn-in could not start: thresholds or the Xid catalog are malformed (exit 4), or
    /// `--gpus` names a GPU that is not there (exit 2).
    #[error(transparent)]
    Burnin(#[from] BurninError),

    /// The platform chosen for a burn-in gives nothing to judge against (exit 4).
    #[error(transparent)]
    Thresholds(#[from] crate::burnin::thresholds::ThresholdError),

    /// `kiln capture` into a directory that is not empty (exit 2).
    #[error(transparent)]
    CaptureInto(CaptureError),
    /// `kiln capture` failed while writing (exit 10).
    #[error("capture failed")]
    Capture(#[source] CaptureError),

    /// The BMC target could not be built from the flags or the manifest (exit 4).
    #[error(transparent)]
    BmcTarget(#[from] crate::bmc::TargetError),
    /// The BMC failed or answered wrong (exit 6); kiln's TLS settings were bad (exit 4).
    #[error(transparent)]
    Bmc(#[from] crate::bmc::BmcError),
    /// A change was not sent because it could not be logged first (exit 5).
    #[error("not sending {action} to {bmc}")]
    NotSent {
        action: String,
        bmc: String,
        #[source]
        source: InventoryError,
    },
    /// A change was sent, but its outcome could not be logged (exit 5).
    #[error("the outcome was not logged in {}", db.display())]
    NotLogged {
        db: PathBuf,
        #[source]
        source: InventoryError,
    },
    /// The BMC listed firmware items it would not let kiln read (exit 6).
    #[error("{count} firmware item(s) could not be read")]
    FirmwareUnreadable { count: usize },

    /// A bill of materials is malformed (exit 4). Every issue is printed.
    #[error(transparent)]
    Bom(#[from] crate::checks::bom::BomError),
    /// A firmware recipe is malformed, or `--recipe` names none (exit 4).
    #[error(transparent)]
    FirmwareRecipe(#[from] crate::firmware::RecipeError),
    /// A firmware package is missing or differs from its recipe; nothing was sent (exit 4).
    #[error(transparent)]
    FirmwarePackage(#[from] crate::firmware::package::PackageError),
    /// An image recipe is malformed (exit 4). Every issue is printed.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// `kiln image build` failed: the recipe's base (4), a download (6), a tool (10).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The image to write, or its block map, could not be had: a bad file (4), a URL that
    /// did not answer (6), a stream without `--bmap` (2).
    #[error(transparent)]
    ImageSource(#[from] ImageSourceError),
    /// The image write failed: at the image (exit 4) or at the target (exit 8). The target's
    /// state afterwards is printed beside it.
    #[error(transparent)]
    Write(#[from] WriteFailure),
    /// The image write could not be recorded in the inventory (exit 5).
    #[error("{source}")]
    WriteNotRecorded {
        source: InventoryError,
        /// The image was written and verified: only the record is missing.
        written: bool,
    },
    /// The target disk could not be opened (exit 8).
    #[error(transparent)]
    TargetOpen(WriteError),
    /// The target's partition tables could not be wiped (exit 8).
    #[error("wipe {}", target.display())]
    Wipe {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An artifact manifest could not be read (exit 4).
    #[error(transparent)]
    ImageManifest(#[from] crate::image::ManifestError),
    /// A network-boot setting iPXE or dnsmasq would misread (exit 4).
    #[error(transparent)]
    Pxe(#[from] PxeError),
    /// The file server could not start: its directory or its address (exit 4).
    #[error(transparent)]
    Serve(#[from] ServeError),

    /// A deployment could not start: its artifact (4), the inventory (5).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// `kiln agent` failed; the exit code says where (see `docs/exit-codes.md`).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Selected nodes were not confirmed on the image; each is named with its reason.
    #[error("{} node(s) not confirmed on the image", nodes.len())]
    NotConfirmed {
        /// Node name and why.
        nodes: Vec<(String, String)>,
    },
    /// The Kubernetes API settings are unusable (exit 4).
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The rack run was done, but could not be recorded (exit 5).
    #[error("the rack run could not be recorded in {}: {reason}", db.display())]
    RackNotRecorded { db: PathBuf, reason: String },
    /// `kiln rack burnin --via slurm` could not start or follow its jobs: Slurm unreachable
    /// (exit 6), nodes Slurm does not know (exit 4), the inventory (exit 5).
    #[error(transparent)]
    SlurmBurnin(#[from] crate::fleet::SlurmBurninError),
    /// `kiln healthcheck --drain` has no node name to drain.
    #[error("cannot drain: the hostname could not be read (pass --node-name)")]
    DrainNoName,
    /// `kiln healthcheck --drain` could not drain the node.
    #[error("could not drain: {error}")]
    Drain { error: String },
    /// known_hosts could not be read or written (exit 10).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The kiln to push to the nodes (`--node-binary FILE`, `--dist DIR`) is unusable: missing,
    /// not an ELF executable, a malformed or inconsistent `kiln.dist` manifest (exit 4); the
    /// running kiln could not be found (exit 10).
    #[error(transparent)]
    NodeBinary(BinaryError),

    /// A time (`--at`) in none of the accepted forms (exit 2).
    #[error("--at {given:?}: not a time kiln reads; use {accepted}")]
    BadTime { given: String, accepted: &'static str },

    /// Anything else: kiln's own I/O (stdout, its output files), a bug (exit 10).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// A failure, and a second one while recording or reporting it; the first decides the
    /// exit code and both are printed.
    #[error("{0}")]
    Both(Box<CmdError>, Box<CmdError>),
}

impl From<SelectError> for CmdError {
    fn from(e: SelectError) -> CmdError {
        match e {
            SelectError::Spec(e) => CmdError::Spec(e),
            SelectError::Detect(e) => CmdError::Detect(e),
        }
    }
}

impl From<std::io::Error> for CmdError {
    /// Writing the command's own output (stdout) failed.
    fn from(e: std::io::Error) -> CmdError {
        CmdError::Internal(anyhow::Error::new(e).context("write the output"))
    }
}

impl From<serde_json::Error> for CmdError {
    /// A document could not be serialized: a bug.
    fn from(e: serde_json::Error) -> CmdError {
        CmdError::Internal(anyhow::Error::new(e).context("serialize the JSON document"))
    }
}

impl CmdError {
    /// The process exit code this error stands for (`docs/exit-codes.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            CmdError::Usage(_)
            | CmdError::RackNodes(_)
            | CmdError::BurninOptions(_)
            | CmdError::CaptureInto(_)
            | CmdError::BadTime { .. } => exit::USAGE,
            CmdError::BadInput(_)
            | CmdError::Source(_)
            | CmdError::NodeFile(_)
            | CmdError::Spec(_)
            | CmdError::Detect(_)
            | CmdError::Manifest(_)
            | CmdError::BmcTarget(_)
            | CmdError::Recipe(_)
            | CmdError::Bom(_)
            | CmdError::FirmwareRecipe(_)
            | CmdError::FirmwarePackage(_)
            | CmdError::ImageManifest(_)
            | CmdError::Pxe(_)
            | CmdError::Serve(_)
            | CmdError::Kube(_) => exit::BAD_INPUT,
            CmdError::Inventory(e) | CmdError::InventoryDoing { source: e, .. } => inventory_code(e),
            CmdError::Burnin(BurninError::NoSuchGpu { .. }) => exit::USAGE,
            CmdError::Burnin(BurninError::Lock(crate::burnin::lock::LockError::Busy { .. })) => exit::BUSY,
            CmdError::Burnin(BurninError::Lock(_)) => exit::INTERNAL,
            CmdError::Thresholds(_) => exit::BAD_INPUT,
            CmdError::Burnin(_) => exit::BAD_INPUT,
            CmdError::Bmc(e) if e.is_bad_input() => exit::BAD_INPUT,
            CmdError::Bmc(_) | CmdError::FirmwareUnreadable { .. } => exit::PEER,
            CmdError::NotSent { .. }
            | CmdError::NotLogged { .. }
            | CmdError::WriteNotRecorded { .. }
            | CmdError::RackNotRecorded { .. } => exit::DATABASE,
            CmdError::Build(e) if e.is_bad_input() => exit::BAD_INPUT,
            CmdError::Build(e) if e.is_peer() => exit::PEER,
            CmdError::Build(_) => exit::INTERNAL,
            CmdError::ImageSource(e) => e.exit_code(),
            CmdError::Write(f) if f.error.is_bad_image() => exit::BAD_INPUT,
            CmdError::Write(_) | CmdError::TargetOpen(_) | CmdError::Wipe { .. } => exit::TARGET_FAILED,
            CmdError::Deploy(e) => e.exit_code(),
            CmdError::Agent(e) => agent_code(e),
            CmdError::NotConfirmed { .. } => exit::CHECK_FAILED,
            // A failed drain never hides the verdict: the command gives the verdict's code.
            CmdError::DrainNoName | CmdError::Drain { .. } => exit::CHECK_FAILED,
            CmdError::NodeBinary(BinaryError::CurrentExe(_)) => exit::INTERNAL,
            CmdError::NodeBinary(_) => exit::BAD_INPUT,
            CmdError::Capture(_) | CmdError::Trust(_) | CmdError::Internal(_) => exit::INTERNAL,
            CmdError::SlurmBurnin(e) => e.exit_code(),
            CmdError::Both(first, _) => first.exit_code(),
        }
    }

    /// The error as the user reads it on stderr, one line per line, each ending in `\n`:
    /// `kiln: error: ` and the error with its causes (`error::chain`), then any lines that
    /// belong to it (every issue of a malformed file, the target's state after a failed write).
    /// The user and password of any URL in it (an image URL, or one a peer's error repeats)
    /// read `***` (`redact::userinfo`).
    pub fn report(&self) -> String {
        crate::redact::userinfo(&self.lines()).into_owned()
    }

    fn lines(&self) -> String {
        match self {
            CmdError::Both(first, second) => return first.lines() + &second.lines(),
            CmdError::NotConfirmed { nodes } => {
                return nodes.iter().map(|(node, why)| format!("kiln: {node}: {why}\n")).collect();
            }
            _ => {}
        }
        let mut out = format!("kiln: error: {}\n", chain(self));
        match self {
            CmdError::Spec(SpecError::Invalid { file, issues }) => {
                for issue in issues.iter().skip(1) {
                    out.push_str(&format!("kiln: error: {}:{issue}\n", file.display()));
                }
            }
            CmdError::Bom(crate::checks::bom::BomError::Invalid { file, issues })
            | CmdError::Manifest(crate::rack::ManifestError::Bom(crate::checks::bom::BomError::Invalid {
                file,
                issues,
            })) => {
                for issue in issues.iter().skip(1) {
                    out.push_str(&format!("kiln: error: {}:{issue}\n", file.display()));
                }
            }
            CmdError::Recipe(RecipeError::Invalid { file, issues }) => {
                for i in issues.iter().skip(1) {
                    out.push_str(&format!(
                        "kiln: error: {}:{}:{}: field `{}`: {}\n",
                        file.display(),
                        i.line,
                        i.column,
                        i.field,
                        i.message
                    ));
                }
            }
            CmdError::Inventory(InventoryError::IllegalTransition { .. })
            | CmdError::InventoryDoing { source: InventoryError::IllegalTransition { .. }, .. } => {
                out.push_str("kiln: nothing was recorded\n");
            }
            CmdError::Write(f) => out.push_str(&format!("kiln: {}\n", f.target)),
            CmdError::WriteNotRecorded { written: true, .. } => {
                out.push_str("kiln: the image was written and verified; only recording it failed\n");
            }
            _ => {}
        }
        crate::truncate::message(&out).into_owned()
    }
}

/// An inventory error's exit code: a node the inventory does not know is a mistake in the
/// invocation (as `kiln report --node`), a move the lifecycle refuses is a failed check, the rest
/// is the database.
fn inventory_code(e: &InventoryError) -> i32 {
    match e {
        InventoryError::UnknownNode { .. }
        | InventoryError::AmbiguousNode { .. }
        | InventoryError::UnknownSerial { .. }
        | InventoryError::UnknownRun { .. }
        | InventoryError::NotYetRecorded { .. } => exit::USAGE,
        InventoryError::IllegalTransition { .. } => exit::CHECK_FAILED,
        _ => exit::DATABASE,
    }
}

/// `kiln agent`'s exit code for how it failed.
fn agent_code(e: &AgentError) -> i32 {
    match e {
        AgentError::WriteFailed { source, .. } if source.is::<WriterLost>() => exit::INTERNAL,
        AgentError::WriteFailed { .. } if e.is_bad_image() => exit::BAD_INPUT,
        AgentError::WriteFailed { .. } | AgentError::ReadTarget { .. } => exit::TARGET_FAILED,
        AgentError::Refused { status: 403 | 404, .. } => exit::BAD_INPUT,
        AgentError::NoKey(_) => exit::USAGE,
        AgentError::NotConfirmed(_) | AgentError::ToldToStay => exit::CHECK_FAILED,
        AgentError::ImageJson { .. } => exit::BAD_INPUT,
        AgentError::Reboot(_) => exit::INTERNAL,
        AgentError::Unreachable { .. }
        | AgentError::Stalled { .. }
        | AgentError::Refused { .. }
        | AgentError::BadReply { .. }
        | AgentError::NotGenuine { .. }
        | AgentError::StillWaiting { .. } => exit::PEER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::spec_error::SpecIssue;
    use crate::cmd::Outcome;

    #[test]
    fn an_error_gives_its_class_code_and_a_finished_run_keeps_its_own() {
        let e = CmdError::Usage("--parts is a CSV list: use it with --format csv".into());
        let o = Outcome::from(e);
        assert_eq!(
            (o.code(), o.report().as_str()),
            (2, "kiln: error: --parts is a CSV list: use it with --format csv\n")
        );
        let o = Outcome::exit(exit::CHECK_FAILED).with_error(CmdError::Drain { error: "scontrol: denied".into() });
        assert_eq!((o.code(), o.report().as_str()), (1, "kiln: error: could not drain: scontrol: denied\n"));
        assert_eq!(Outcome::ok().report(), "");
        let missing = InventoryError::Missing { path: "inv.db".into() };
        assert_eq!(CmdError::from(missing).exit_code(), exit::DATABASE);
        let unknown = InventoryError::UnknownNode { hostname: "n9".into() };
        assert_eq!(CmdError::from(unknown).exit_code(), exit::USAGE);
    }

    #[test]
    fn every_issue_of_a_malformed_spec_is_printed_and_each_names_the_file() {
        let issue = |line, field: &str| SpecIssue { line, column: 1, field: field.into(), message: "bad".into() };
        let e = CmdError::Spec(SpecError::Invalid {
            file: "site.toml".into(),
            issues: vec![issue(3, "aer.fatal_max"), issue(7, "devices[0].count")],
        });
        let report = e.report();
        assert_eq!(report.lines().count(), 2, "{report}");
        assert!(report.lines().all(|l| l.starts_with("kiln: error: site.toml:")), "{report}");
        assert!(report.contains("site.toml:7:1: field `devices[0].count`"), "{report}");
    }

    #[test]
    fn a_second_failure_is_said_after_the_first_which_decides_the_code() {
        let first = CmdError::FirmwareUnreadable { count: 2 };
        let second =
            CmdError::NotLogged { db: "inv.db".into(), source: InventoryError::Missing { path: "inv.db".into() } };
        let o = Outcome::from(first).with_error(second);
        assert_eq!(o.code(), exit::PEER);
        let lines: Vec<String> = o.report().lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], "kiln: error: 2 firmware item(s) could not be read");
        assert!(lines[1].starts_with("kiln: error: the outcome was not logged in inv.db: open database inv.db"));
    }

    #[test]
    fn a_url_password_in_an_error_is_never_printed() {
        // A peer's message may repeat the URL it was given, credentials and all.
        let peer = CmdError::Usage("the BMC said: Failed fetching image http://isouser:s3cret@10.0.0.5/x.iso".into());
        let second = CmdError::BadInput("--media https://u:s3cret@h/y.iso: no such file".into());
        let report = Outcome::from(peer).with_error(second).report();
        assert!(!report.contains("s3cret") && !report.contains("isouser"), "{report}");
        assert!(report.contains("http://***@10.0.0.5/x.iso") && report.contains("https://***@h/y.iso"), "{report}");
    }
}
