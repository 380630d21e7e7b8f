//! Hand-off: the last step of bring-up. Passing nodes go into the cluster (Slurm, Kubernetes),
//! failing ones stay out with a reason a technician can act on, and kiln undoes only what it did.

mod decide;
mod error;
mod hostname;
pub mod kube_api;
pub mod kubernetes;
mod outcome;
mod record;
mod run;
mod scontrol;
pub mod slurm;
mod topology;
mod topology_domains;
mod topology_install;

pub use decide::{decide, list_checks, Decision, Health};
pub use error::{KubeError, SlurmError};
pub use hostname::short_hostname;
pub use kube_api::{KubeApi, KubeNodes};
pub use outcome::{
    exit_code, render_text, Action, ActionResult, BrokenTray, Disposition, DomainHandoff, HandoffOutcome, NodeHandoff,
};
pub use record::ACTOR;
pub use run::{hand_off_domains, hand_off_rack, Cluster, Domain};
pub use scontrol::{parse_show_node, Scontrol};
pub use slurm::{drain_reason, Resumed, SlurmControl, SlurmNode, KILN_REASON_PREFIX};
pub use topology::{hostlist, LeftOut, Topology, TopologyFormat, VerifiedDomain, CLIQUE_LABEL};
pub use topology_domains::{verified_domains, Candidate};
pub use topology_install::{
    install as install_topology, write_atomically, InstallResult, SlurmConfig, TopologyInstall,
};
