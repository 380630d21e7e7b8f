//! The lab's network: a bridge on the host and one namespace per node joined to it by a veth pair.

use std::process::Command;

use super::process::{run, run_quiet};

pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn create_bridge(name: &str, address: &str) -> anyhow::Result<()> {
    run(Command::new("ip").args(["link", "add", name, "type", "bridge"]))?;
    run(Command::new("ip").args(["addr", "add", &format!("{address}/24"), "dev", name]))?;
    run(Command::new("ip").args(["link", "set", name, "up"]))?;
    Ok(())
}

/// A namespace whose `eth0` (with `mac` and `address`) is a veth into the bridge.
pub fn create_node(netns: &str, veth: &str, bridge: &str, address: &str, mac: &str) -> anyhow::Result<()> {
    run(Command::new("ip").args(["netns", "add", netns]))?;
    run(Command::new("ip")
        .args(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "address", mac, "netns", netns]))?;
    run(Command::new("ip").args(["link", "set", veth, "master", bridge, "up"]))?;
    let inside = format!("--net=/run/netns/{netns}");
    run(Command::new("nsenter").args([&inside, "ip", "addr", "add", &format!("{address}/24"), "dev", "eth0"]))?;
    run(Command::new("nsenter").args([&inside, "ip", "link", "set", "eth0", "up"]))?;
    run(Command::new("nsenter").args([&inside, "ip", "link", "set", "lo", "up"]))?;
    Ok(())
}

/// Pulls or plugs the node's cable (the host end of its veth).
pub fn set_link(veth: &str, up: bool) -> anyhow::Result<()> {
    run(Command::new("ip").args(["link", "set", veth, if up { "up" } else { "down" }]))?;
    Ok(())
}

pub fn delete_netns(name: &str) {
    run_quiet(Command::new("ip").args(["netns", "del", name]));
}

pub fn delete_link(name: &str) {
    run_quiet(Command::new("ip").args(["link", "del", name]));
}

/// Namespaces whose name starts with `prefix` (left by a lab that died).
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Processes running inside a namespace.
pub fn netns_pids(name: &str) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", name]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.trim().parse().ok()).collect()
}
