//! What a node's IMEX service said when the node was inspected: the daemon's view of its NVLink
//! domain (`nvidia-imex-ctl -N -j`), its peer list (`nodes_config.cfg`) and whether the channel
//! device workloads open is there.

use serde::{Deserialize, Serialize};

/// The IMEX service of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Imex {
    /// Neither `nvidia-imex-ctl` nor `/etc/nvidia-imex` is there.
    NotInstalled { reason: String },
    Inspected {
        daemon: ImexDaemon,
        /// The peers `/etc/nvidia-imex/nodes_config.cfg` lists, in its order (blank and `#` lines
        /// dropped); `None` when the file is not there.
        config: Option<Vec<String>>,
        /// `/dev/nvidia-caps-imex-channels/channel0` exists.
        channel0: bool,
    },
}

/// `nvidia-imex-ctl -N -j`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ImexDaemon {
    /// The daemon answered: the domain's state (`UP`, `DEGRADED`, `DOWN`) and every peer.
    Answered { domain: String, peers: Vec<ImexPeer> },
    /// The command failed or timed out (the daemon is not running, or its command service is
    /// off): what it said.
    NotAnswering { reason: String },
    /// It printed something that is not the documented JSON.
    Unreadable { reason: String },
}

/// One peer of the domain as the daemon lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImexPeer {
    /// The daemon's index of the peer (`"0"`, `"1"`, ...).
    pub index: String,
    /// The peer's address as the daemon knows it (an IP of nodes_config.cfg).
    pub host: String,
    /// `READY`, `UNAVAILABLE`, `WAITING_FOR_PEERS`, ...
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
