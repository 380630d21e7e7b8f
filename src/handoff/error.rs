//! Hand-off errors: one variant per operation on a cluster that can fail.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} exited {code}: {message}")]
    Command { command: String, code: i32, message: String },
    #[error("node {node} is not a node of this Slurm cluster")]
    UnknownNode { node: String },
    #[error("read the state of Slurm node {node}: {what}")]
    Parse { node: String, what: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("read the Kubernetes token file {}", path.display())]
    ReadToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Kubernetes token file {} is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("{url:?} is not a Kubernetes API URL (https://host:port)")]
    BadUrl { url: String },
    #[error("set up TLS for the Kubernetes API server")]
    Tls {
        #[source]
        source: crate::bmc::TlsError,
    },
    #[error("{method} {path} on {api}: no answer")]
    Transport {
        api: String,
        method: &'static str,
        path: String,
        #[source]
        source: ureq::Error,
    },
    #[error("{method} {path} on {api}: HTTP {status}: {message}")]
    Status { api: String, method: &'static str, path: String, status: u16, message: String },
    #[error("{method} {path} on {api}: the answer is not a Kubernetes object")]
    BadReply {
        api: String,
        method: &'static str,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("node {node} is not a node of this Kubernetes cluster")]
    UnknownNode { node: String },
    #[error("node {node} kept changing while kiln patched it (resourceVersion conflict {tries} times)")]
    Conflict { node: String, tries: u32 },
}
