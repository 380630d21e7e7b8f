//! Rack deployment: the controller (`kiln rack image`) that boots each node into an imaging
//! environment through its BMC, serves it the image, and confirms what booted; and the agent
//! (`kiln agent`) that runs on the node. docs/imaging.md, "Deploying".

pub mod agent;
mod board;
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

pub use agent::{run_booted, run_imaging, AgentDone, AgentError, AgentOptions, WriterLost};
pub use board::{Board, Offer, Phase};
pub use identify::identify;
pub use node::{deploy_node, humanize, BootVia, NodeJob, StepSink};
pub use run::{run_deploy, DeployArtifact, DeployError, DeployOptions, DeployOutcome, ACTOR};
pub use stall::Stalled;
pub use step::{NodeReport, NodeStatus, Step, StepLine};
