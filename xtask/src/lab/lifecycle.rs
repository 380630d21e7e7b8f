//! `up`, `down`, `status` of the lab, and what tests do to its nodes (kill sshd, change a host key,
//! pull a cable).

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::bmc::{self, BmcConfig};
use super::config::LabConfig;
use super::deps::{ensure_sushy, ensure_system_tools, is_root};
use super::fixtures::assign;
use super::manifest::{node_uuid, write_known_hosts, write_manifest};
use super::net;
use super::process::{alive, kill_tree, wait_tcp};
use super::sshd::{self, SshdLaunch};
use super::state::{LabNode, LabState};

/// A running lab.
#[derive(Debug, Clone)]
pub struct Lab {
    pub state: LabState,
}

/// Whether one node answers.
#[derive(Debug, Clone)]
pub struct NodeHealth {
    pub name: String,
    pub address: String,
    pub fixture: String,
    /// sshd accepted a connection and sent its SSH banner.
    pub sshd: bool,
    /// The BMC accepted a connection (`None`: the lab has no BMCs).
    pub bmc: Option<bool>,
}

/// Brings the lab up (taking down a stale one first) and returns it once
/// every sshd and BMC accepts connections.
pub fn up(cfg: &LabConfig) -> anyhow::Result<Lab> {
    if !is_root() {
        bail!("the lab needs root (network namespaces, a bridge, mounts)");
    }
    if cfg.nodes == 0 || cfg.nodes > 200 {
        bail!("--nodes must be between 1 and 200");
    }
    ensure_system_tools(cfg.bmc)?;
    let sushy = if cfg.bmc { Some(ensure_sushy(&cfg.venv)?) } else { None };
    down(&cfg.dir)?;
    clear_stale(&cfg.prefix, &cfg.bridge());

    let started = Instant::now();
    std::fs::create_dir_all(&cfg.dir).with_context(|| format!("create {}", cfg.dir.display()))?;
    let dir = cfg.dir.canonicalize().context("resolve the lab directory")?;
    // Each node mounts its own directory over this one; on the host it stays empty.
    std::fs::create_dir_all(sshd::NODE_VAR_LIB).context("create /var/lib/kiln")?;
    let (_, authorized) = sshd::ensure_client_key(&dir)?;
    let fixtures = assign(cfg)?;
    let tls = if cfg.bmc { Some(bmc::ensure_tls(&dir, &cfg.host_address())?) } else { None };
    let htpasswd = match &sushy {
        Some(_) => Some(bmc::ensure_password(&dir, &cfg.venv)?.1),
        None => None,
    };

    let mut state = LabState {
        prefix: cfg.prefix.clone(),
        bridge: cfg.bridge(),
        host_address: cfg.host_address(),
        dir: dir.clone(),
        manifest: cfg.manifest.clone(),
        nodes: Vec::new(),
    };
    net::create_bridge(&state.bridge, &state.host_address)?;
    state.save()?;
    for (i, fixture) in fixtures.iter().enumerate() {
        let name = LabConfig::node_name(i);
        let node_dir = dir.join("nodes").join(&name);
        std::fs::create_dir_all(&node_dir).with_context(|| format!("create {}", node_dir.display()))?;
        sshd::ensure_host_key(&node_dir, &name)?;
        let address = cfg.node_address(i);
        let config = sshd::write_config(&node_dir, &address, &authorized)?;
        net::create_node(&cfg.netns(i), &cfg.veth(i), &state.bridge, &address, &cfg.node_mac(i))?;
        // Every `up` gives fresh nodes: nothing pushed yet.
        let var_lib = node_dir.join("var-lib-kiln");
        if var_lib.exists() {
            std::fs::remove_dir_all(&var_lib).with_context(|| format!("clear {}", var_lib.display()))?;
        }
        let launch = SshdLaunch {
            netns: cfg.netns(i),
            hostname: name.clone(),
            config,
            fixture: fixture.path.clone(),
            var_lib,
            log: node_dir.join("sshd.log"),
            personality: None,
        };
        // Recorded before starting, so that `down` finds the namespace even
        // if sshd fails to start.
        state.nodes.push(LabNode {
            name: name.clone(),
            netns: cfg.netns(i),
            veth: cfg.veth(i),
            address: address.clone(),
            mac: cfg.node_mac(i),
            fixture: fixture.label.clone(),
            sshd_pid: 0,
            sshd: launch.clone(),
            bmc_pid: None,
            bmc_url: None,
        });
        state.save()?;
        let pid = sshd::start(&launch)?;
        let node = state.nodes.last_mut().context("node just pushed")?;
        node.sshd_pid = pid;
        if let (Some(_), Some((_, cert, key)), Some(htpasswd)) = (&sushy, &tls, &htpasswd) {
            let port = cfg.bmc_port(i);
            let uuid = node_uuid(i);
            let pid = bmc::start(
                &BmcConfig {
                    node_dir: &node_dir,
                    name: &name,
                    uuid: &uuid,
                    mac: &cfg.node_mac(i),
                    node_address: &address,
                    listen: &state.host_address,
                    port,
                    cert,
                    key,
                    htpasswd,
                },
                &cfg.venv,
            )?;
            node.bmc_pid = Some(pid);
            node.bmc_url = Some(format!("https://{}:{port}", state.host_address));
        }
        state.save()?;
    }
    for n in &state.nodes {
        wait_tcp(&format!("{}:22", n.address), Duration::from_secs(10))
            .with_context(|| format!("{}: sshd did not come up; see {}", n.name, n.sshd.log.display()))?;
    }
    for (i, n) in state.nodes.iter().enumerate() {
        if n.bmc_pid.is_some() {
            wait_tcp(&format!("{}:{}", state.host_address, cfg.bmc_port(i)), Duration::from_secs(60)).with_context(
                || {
                    format!(
                        "{}: BMC did not come up; see {}",
                        n.name,
                        dir.join("nodes").join(&n.name).join("bmc.log").display()
                    )
                },
            )?;
        }
    }
    write_known_hosts(&state, cfg.pretrust)?;
    let platform = fixtures.iter().all(|f| f.label.starts_with("hgx-b200")).then_some("hgx-b200");
    let rack_id = if cfg.prefix == "kiln" { "lab-r1".to_string() } else { format!("{}-lab", cfg.prefix) };
    write_manifest(&state, &rack_id, platform, cfg.bmc)?;
    eprintln!(
        "lab: {} nodes up in {:.1} s; manifest {}",
        state.nodes.len(),
        started.elapsed().as_secs_f64(),
        state.manifest.display()
    );
    Ok(Lab { state })
}

/// Removes what a lab left when its state file is gone: namespaces named
/// with the prefix (and the sshds inside them, which only the lab starts)
/// and the bridge.
fn clear_stale(prefix: &str, bridge: &str) {
    for ns in net::netns_with_prefix(&format!("{prefix}-node")) {
        for pid in net::netns_pids(&ns) {
            kill_tree(pid, "sshd");
        }
        net::delete_netns(&ns);
    }
    if net::link_exists(bridge) {
        net::delete_link(bridge);
    }
}

/// Stops every process of the lab in `dir` and deletes its namespaces,
/// links and bridge. Nothing running is not an error.
pub fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = LabState::load(dir)? else {
        return Ok(());
    };
    for n in &state.nodes {
        if n.sshd_pid != 0 {
            kill_tree(n.sshd_pid, "sshd");
        }
        // Sessions that outlived their listener (a test killed it) still run in the namespace.
        for pid in net::netns_pids(&n.netns) {
            kill_tree(pid, "sshd");
        }
        if let Some(pid) = n.bmc_pid {
            kill_tree(pid, "sushy");
        }
        net::delete_netns(&n.netns);
        net::delete_link(&n.veth);
    }
    net::delete_link(&state.bridge);
    std::fs::remove_file(dir.join("state.json")).with_context(|| format!("remove {}/state.json", dir.display()))?;
    Ok(())
}

/// Whether each node's sshd and BMC answer.
pub fn status(dir: &Path) -> anyhow::Result<Vec<NodeHealth>> {
    let state = LabState::load(dir)?.context("no lab is up (no state.json)")?;
    Ok(state
        .nodes
        .iter()
        .map(|n| NodeHealth {
            name: n.name.clone(),
            address: n.address.clone(),
            fixture: n.fixture.clone(),
            sshd: ssh_banner(&n.address),
            bmc: n.bmc_url.as_ref().map(|url| {
                let hostport = url.trim_start_matches("https://");
                n.bmc_pid.is_some_and(alive)
                    && hostport.parse().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
            }),
        })
        .collect())
}

fn ssh_banner(address: &str) -> bool {
    let Ok(addr) = format!("{address}:22").parse() else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
}

impl Lab {
    /// The lab that `up` left in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Lab> {
        Ok(Lab { state: LabState::load(dir)?.context("no lab is up (no state.json)")? })
    }

    pub fn manifest(&self) -> &Path {
        &self.state.manifest
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state.dir.join("known_hosts")
    }

    pub fn client_key(&self) -> PathBuf {
        self.state.dir.join("client_key")
    }

    /// `pdsh` running the node binary the rack commands push (`/var/lib/kiln/bin/kiln`) with
    /// `args` on every node, `fanout` at a time, over the lab's key and known hosts: what a site
    /// would otherwise run, for the benchmarks.
    pub fn pdsh(&self, fanout: usize, args: &[&str]) -> std::process::Command {
        let addresses: Vec<&str> = self.state.nodes.iter().map(|n| n.address.as_str()).collect();
        let ssh_args = format!(
            "-i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -l%u %h",
            self.client_key().display(),
            self.known_hosts().display()
        );
        let mut c = std::process::Command::new("pdsh");
        c.args(["-R", "ssh", "-l", "root", "-f"]).arg(fanout.to_string()).arg("-w").arg(addresses.join(","));
        c.arg("/var/lib/kiln/bin/kiln").args(args);
        c.env("PDSH_SSH_ARGS", ssh_args);
        c
    }

    /// Kills a node's sshd and every session under it: its connections drop
    /// mid-command and new ones are refused.
    pub fn kill_sshd(&self, node: &str) -> anyhow::Result<()> {
        let n = self.state.node(node)?;
        for pid in net::netns_pids(&n.netns) {
            kill_tree(pid, "sshd");
        }
        Ok(())
    }

    /// Starts a node's sshd again (after `kill_sshd` or a key change).
    pub fn restart_sshd(&mut self, node: &str) -> anyhow::Result<()> {
        self.kill_sshd(node)?;
        let n = self.state.nodes.iter_mut().find(|n| n.name == node).context("no such node")?;
        n.sshd_pid = sshd::start(&n.sshd)?;
        let address = n.address.clone();
        self.state.save()?;
        wait_tcp(&format!("{address}:22"), Duration::from_secs(10))
    }

    /// Restarts a node's sshd so that its sessions report `arch` from
    /// `uname -m` (a `setarch` personality, inherited by every session;
    /// `None`: the machine's own). The kernel offers only the personalities
    /// it runs, so on x86_64 the other one is `i686`.
    pub fn set_node_arch(&mut self, node: &str, arch: Option<&str>) -> anyhow::Result<()> {
        let n = self.state.nodes.iter_mut().find(|n| n.name == node).context("no such node")?;
        n.sshd.personality = arch.map(str::to_string);
        self.state.save()?;
        self.restart_sshd(node)
    }

    /// Gives a node a new host key and restarts its sshd, as a reinstall
    /// would; known_hosts still holds the old key.
    pub fn change_host_key(&mut self, node: &str) -> anyhow::Result<()> {
        sshd::regenerate_host_key(&self.state.dir.join("nodes").join(node), node)?;
        self.restart_sshd(node)
    }

    /// The processes running in a node's namespace, with their command lines.
    pub fn node_processes(&self, node: &str) -> anyhow::Result<Vec<(u32, String)>> {
        let n = self.state.node(node)?;
        Ok(net::netns_pids(&n.netns)
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
                    .unwrap_or_default();
                (pid, cmd)
            })
            .collect())
    }

    /// Pulls (`false`) or plugs (`true`) a node's network cable.
    pub fn set_link(&self, node: &str, up: bool) -> anyhow::Result<()> {
        net::set_link(&self.state.node(node)?.veth, up)
    }
}

/// Takes the lab in a directory down when dropped, even when a test's assertion fails halfway.
/// After a test that passed, the directory goes too (each node holds a copy of the pushed kiln:
/// 18 trays of a debug build are over 3 GB); after a failure it stays, to be looked at.
pub struct Teardown(pub PathBuf);

impl Drop for Teardown {
    fn drop(&mut self) {
        match down(&self.0) {
            Err(e) => eprintln!("lab down failed: {e:#}"),
            Ok(()) if !std::thread::panicking() => {
                if let Err(e) = std::fs::remove_dir_all(&self.0) {
                    eprintln!("could not remove the lab directory {}: {e}", self.0.display());
                }
            }
            Ok(()) => eprintln!("the failed test's lab is kept in {}", self.0.display()),
        }
    }
}
