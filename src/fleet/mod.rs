//! The controller side of a rack: SSH to the nodes, run the node commands on all of them at once,
//! collect their JSON, and judge what only shows across nodes.

mod bom;
mod collective;
mod dist;
pub mod elf;
mod fanout;
mod fingerprint;
pub mod follow_lock;
pub mod imex;
mod local;
mod node_binary;
mod outcome;
mod pool;
mod push;
pub mod rack_checks;
mod rack_domain;
mod rack_run;
mod record;
mod serials;
mod site_run;
mod slurm_burnin;
pub mod slurm_jobs;
mod ssh;
mod table;
mod transport;
mod trust;

pub use collective::{run_collective, CollectiveOutcome, CollectiveRun, RankOutcome};
pub use dist::{DistError, Encoding, MANIFEST as DIST_MANIFEST};
pub use fanout::{run_step, FanoutOptions, Phase, Plan, Skip};
pub use fingerprint::sha256_base64;
pub use local::{LocalConnector, LocalTransport};
pub use node_binary::{
    local_sha256, BinaryError, BinarySource, NodeBinary, Packed, RemoteBinary, Wire, DEFAULT_REMOTE_PATH,
};
pub use outcome::{exit_code, BinaryState, FailureKind, NodeOutcome, NodeStatus, RackOutcome, Recorded, Step};
pub(crate) use pool::map_bounded;
pub use pool::{SessionPermit, Sessions};
pub use rack_run::{run_rack_step, RackStep};
pub use record::{already_passed, record_outcome, run_kind, RecordResult};
pub use site_run::{
    racks_at_once, run_site_step, worst_exit, AfterRack, OpenInventory, SiteOutcome, SiteRackStep, SiteStep,
    SITE_SCHEMA_VERSION,
};
pub use slurm_burnin::{
    job_name, run_slurm_burnin, JobReport, SlurmBurnin, SlurmBurninError, SlurmBurninOutcome, SlurmEvent,
};
pub use slurm_jobs::{SlurmCli, SlurmJobError, SlurmJobs};
pub use ssh::{SshConnector, SshTransport};
pub use table::{site_table, summary_table};
pub use transport::{
    shell_quote, Answer, Answerer, CommandOutput, Connector, NodeTransport, RemoteExit, TransportError,
};
pub use trust::{trust_nodes, TrustError, TrustOptions, TrustOutcome, TrustResult};
