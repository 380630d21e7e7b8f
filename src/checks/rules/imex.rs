//! IMEX, for a platform whose spec has `[nvlink_domain]`: the daemon answers, every peer it
//! lists is READY and the domain UP, its peer list is there, and the channel device workloads
//! open exists; across a domain's trays (`same_config`), every member lists the same peers.
//!
//! IMEX not installed is `skipped`. Installed but with no peer list yet is `skipped` too: the
//! list is written by `kiln rack imex` for the trays the rack gate passed, so judging the daemon
//! before it has peers would keep every tray out of the gate that gives it its peers.

use super::common::{error, fail, pass, skipped, Ctx};
use crate::checks::finding::{Component, Finding};
use crate::checks::platform::Platform;
use crate::model::{Imex, ImexDaemon, Node};

pub const DAEMON: &str = "imex.daemon";
pub const PEERS: &str = "imex.peers";
pub const CONFIG: &str = "imex.config";
pub const CHANNEL: &str = "imex.channel";
/// Across a domain's trays: every member lists the same peers.
pub const RACK_CONFIG: &str = "rack.imex.config";

const RESTART: &str = "check the IMEX service (systemctl status nvidia-imex; its log in /var/log/nvidia-imex.log), \
                       restart it (systemctl restart nvidia-imex), then re-run";

fn node() -> Component {
    Component { kind: "imex".into(), name: Some("nvidia-imex".into()), ..Default::default() }
}

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    if spec.nvlink_domain.is_none() {
        return Vec::new();
    }
    let Some(imex) = &ctx.node.imex else {
        return vec![skipped(DAEMON, node(), "IMEX not inspected (a node recorded before kiln read IMEX)")];
    };
    let (daemon, config, channel0) = match imex {
        Imex::NotInstalled { reason } => return vec![skipped(DAEMON, node(), reason.clone())],
        Imex::Inspected { daemon, config, channel0 } => (daemon, config, *channel0),
    };
    let Some(config) = config.as_ref().filter(|c| !c.is_empty()) else {
        return vec![skipped(
            CONFIG,
            node(),
            "IMEX is installed but /etc/nvidia-imex/nodes_config.cfg lists no peer: write it with kiln rack imex \
             (after the rack gate), restart nvidia-imex, then re-run",
        )];
    };
    let mut out = vec![pass(CONFIG, node(), format!("nodes_config.cfg lists {} peers", config.len()))];
    match daemon {
        ImexDaemon::NotAnswering { reason } => {
            out.push(fail(DAEMON, node(), format!("the IMEX daemon does not answer: {reason}"), RESTART));
        }
        ImexDaemon::Unreadable { reason } => {
            out.push(error(
                DAEMON,
                node(),
                reason.clone(),
                "re-run; if it persists, report the nvidia-imex-ctl version",
            ));
        }
        ImexDaemon::Answered { domain, peers } => {
            out.push(pass(DAEMON, node(), format!("the IMEX daemon answers: domain {domain}")));
            let not_ready: Vec<String> =
                peers.iter().filter(|p| p.status != "READY").map(|p| format!("{} {}", p.host, p.status)).collect();
            let listed: Vec<&str> = peers.iter().map(|p| p.host.as_str()).collect();
            let stale = listed.len() != config.len() || config.iter().any(|c| !listed.contains(&c.as_str()));
            if stale {
                out.push(fail(
                    PEERS,
                    node(),
                    format!(
                        "the daemon runs with other peers ({}) than nodes_config.cfg lists ({})",
                        listed.join(" "),
                        config.join(" ")
                    ),
                    "the daemon reads its peers when it starts: restart nvidia-imex on every tray of the domain, then \
                     re-run",
                ));
            } else if !not_ready.is_empty() || domain != "UP" {
                out.push(
                    fail(
                        PEERS,
                        node(),
                        format!(
                            "IMEX domain {domain}: {} of {} peers not READY ({})",
                            not_ready.len(),
                            peers.len(),
                            not_ready.join(", ")
                        ),
                        "a peer not READY is a tray whose IMEX daemon is down or unreachable: check nvidia-imex on \
                         that tray and the network between the trays, then re-run",
                    )
                    .expected("UP, every peer READY")
                    .actual(format!("{domain}, {} not READY", not_ready.len())),
                );
            } else {
                out.push(pass(PEERS, node(), format!("IMEX domain UP: all {} peers READY", peers.len())));
            }
        }
    }
    if channel0 {
        out.push(pass(CHANNEL, node(), "/dev/nvidia-caps-imex-channels/channel0 is there"));
    } else {
        out.push(fail(
            CHANNEL,
            node(),
            "no /dev/nvidia-caps-imex-channels/channel0: workloads cannot import memory across trays",
            "the channel device does not survive a reboot: create it (the nvidia module option \
             NVreg_CreateImexChannel0=1, or mknod with the nvidia-caps-imex-channels major from /proc/devices), then \
             re-run",
        ));
    }
    out
}

/// Across the trays of one NVLink domain: every member with a peer list lists the same peers,
/// in any order. A tray whose list differs from the one most trays hold is named.
pub fn same_config(members: &[(&str, &Node)]) -> Vec<Finding> {
    let mut lists: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, n) in members {
        if let Some(Imex::Inspected { config: Some(c), .. }) = &n.imex {
            if !c.is_empty() {
                let mut sorted = c.clone();
                sorted.sort();
                lists.push((name, sorted));
            }
        }
    }
    if lists.len() < 2 {
        return Vec::new();
    }
    let mut counts: Vec<(&Vec<String>, usize)> = Vec::new();
    for (_, l) in &lists {
        match counts.iter_mut().find(|(c, _)| *c == l) {
            Some((_, n)) => *n += 1,
            None => counts.push((l, 1)),
        }
    }
    let Some((common, _)) = counts.iter().max_by_key(|(_, n)| *n).copied() else { return Vec::new() };
    let odd: Vec<&str> = lists.iter().filter(|(_, l)| l != common).map(|(n, _)| *n).collect();
    if odd.is_empty() {
        return vec![pass(
            RACK_CONFIG,
            Component { kind: "rack".into(), ..Default::default() },
            format!("{} trays list the same {} IMEX peers", lists.len(), common.len()),
        )];
    }
    odd.iter()
        .map(|name| {
            fail(
                RACK_CONFIG,
                Component { kind: "node".into(), name: Some(name.to_string()), ..Default::default() },
                format!("{name}: its IMEX peer list differs from the one {} other trays hold", lists.len() - odd.len()),
                "every tray of the domain must list the same peers: write them with kiln rack imex, restart \
                 nvidia-imex on the domain's trays, then re-run",
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode::spec;
    use crate::checks::Outcome;
    use crate::hw::fixture::sample::gb200_tray_node;
    use crate::model::ImexPeer;

    const IPS: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];

    fn with(imex: Option<Imex>) -> Node {
        let mut n = gb200_tray_node();
        n.imex = imex;
        n
    }

    fn answered(statuses: &[&str], domain: &str) -> ImexDaemon {
        ImexDaemon::Answered {
            domain: domain.into(),
            peers: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| ImexPeer {
                    index: i.to_string(),
                    host: IPS[i].into(),
                    status: s.to_string(),
                    version: None,
                })
                .collect(),
        }
    }

    fn inspected(daemon: ImexDaemon, channel0: bool) -> Option<Imex> {
        Some(Imex::Inspected { daemon, config: Some(IPS.iter().map(|s| s.to_string()).collect()), channel0 })
    }

    fn outcomes(node: &Node) -> Vec<(String, Outcome)> {
        check(&Ctx::new(node), &spec("gb200-nvl72-tray")).into_iter().map(|f| (f.check, f.outcome)).collect()
    }

    #[test]
    fn a_healthy_domain_passes_and_each_fault_fails_its_check() {
        let ok = outcomes(&with(inspected(answered(&["READY"; 3], "UP"), true)));
        assert!(ok.iter().all(|(_, o)| *o == Outcome::Pass) && ok.len() == 4, "{ok:?}");
        let degraded = outcomes(&with(inspected(answered(&["READY", "UNAVAILABLE", "READY"], "DEGRADED"), true)));
        assert!(degraded.contains(&(PEERS.into(), Outcome::Fail)), "{degraded:?}");
        let down = outcomes(&with(inspected(ImexDaemon::NotAnswering { reason: "refused".into() }, true)));
        assert!(down.contains(&(DAEMON.into(), Outcome::Fail)), "{down:?}");
        let no_channel = outcomes(&with(inspected(answered(&["READY"; 3], "UP"), false)));
        assert!(no_channel.contains(&(CHANNEL.into(), Outcome::Fail)), "{no_channel:?}");
        let stale = outcomes(&with(inspected(answered(&["READY"; 2], "UP"), true)));
        assert!(stale.contains(&(PEERS.into(), Outcome::Fail)), "a daemon started with an older list: {stale:?}");
        let garbled = outcomes(&with(inspected(ImexDaemon::Unreadable { reason: "no JSON".into() }, true)));
        assert!(garbled.contains(&(DAEMON.into(), Outcome::Error)), "{garbled:?}");
    }

    #[test]
    fn no_imex_or_no_peer_list_yet_is_skipped_and_a_platform_without_a_domain_is_not_judged() {
        let none = outcomes(&with(Some(Imex::NotInstalled { reason: "IMEX is not installed".into() })));
        assert_eq!(none, [(DAEMON.to_string(), Outcome::Skipped)]);
        let unconfigured = with(Some(Imex::Inspected {
            daemon: ImexDaemon::NotAnswering { reason: "no peers".into() },
            config: Some(Vec::new()),
            channel0: false,
        }));
        assert_eq!(outcomes(&unconfigured), [(CONFIG.to_string(), Outcome::Skipped)]);
        assert_eq!(outcomes(&with(None)), [(DAEMON.to_string(), Outcome::Skipped)]);
        let hgx = with(inspected(ImexDaemon::NotAnswering { reason: "x".into() }, false));
        assert!(check(&Ctx::new(&hgx), &spec("hgx-b200")).is_empty());
    }

    #[test]
    fn a_tray_listing_other_peers_than_its_domain_is_named() {
        let same = with(inspected(answered(&["READY"; 3], "UP"), true));
        let mut other = same.clone();
        if let Some(Imex::Inspected { config, .. }) = &mut other.imex {
            *config = Some(vec!["10.0.0.1".into(), "10.0.0.9".into()]);
        }
        let f = same_config(&[("t1", &same), ("t2", &same), ("t3", &other)]);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].outcome, f[0].component.name.as_deref()), (Outcome::Fail, Some("t3")));
        let ok = same_config(&[("t1", &same), ("t2", &same)]);
        assert_eq!(ok[0].outcome, Outcome::Pass);
        assert!(same_config(&[("t1", &same)]).is_empty());
    }
}
