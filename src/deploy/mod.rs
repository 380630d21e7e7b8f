//! Rack deployment: the controller (`kiln rack image`) that boots each node into an imaging
//! environment through its BMC, serves it the image, and confirms what booted; and the agent
//! (`kiln agent`) that runs on the node. docs/imaging.md, "Deploying".

pub mod agent;
pub mod auth;
mod board;
pub mod bootpath;
mod client;
pub mod cmdline;
mod identify;
mod node;
pub mod protocol;
mod run;
mod stall;
mod step;
#[cfg(test)]
mod testing;
pub mod token;

pub use agent::{run_booted, run_imaging, AgentDone, AgentError, AgentOptions, WriterLost};
pub use board::{Access, Board, BootFiles, Offer, Phase, MAX_NOTED};
pub use identify::{parse_leases, Peers};
pub use node::{deploy_node, humanize, BootVia, NodeJob, StepSink};
pub use run::{run_deploy, DeployArtifact, DeployError, DeployOptions, DeployOutcome, ACTOR};
pub use stall::Stalled;
pub use step::{NodeReport, NodeStatus, Step, StepLine};
