//! Each node's OpenSSH server: its own host key and config, started inside the node's network
//! namespace under its own hostname and mount namespace (its /srv/kiln/fixture and /var/lib/kiln).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::process::{quote, run, spawn_detached};

/// Where each node sees its snapshot tree; the manifest's `kiln_root`.
pub const NODE_ROOT: &str = "/srv/kiln/fixture";
/// Where kiln is pushed on the nodes (the fan-out's default).
pub const NODE_VAR_LIB: &str = "/var/lib/kiln";

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path))?;
    Ok(())
}

/// The lab's client key (`client_key`) and the authorized_keys every node uses.
pub fn ensure_client_key(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = dir.join("client_key");
    if !key.exists() {
        keygen(&key, "kiln-lab-client")?;
    }
    let public = std::fs::read_to_string(dir.join("client_key.pub")).context("read the lab client key")?;
    let authorized = dir.join("authorized_keys");
    std::fs::write(&authorized, public).context("write authorized_keys")?;
    set_mode(&authorized, 0o600)?;
    Ok((key, authorized))
}

pub fn host_key_path(node_dir: &Path) -> PathBuf {
    node_dir.join("ssh_host_ed25519_key")
}

/// Keeps a node's host key across `up`s so known_hosts stays valid.
pub fn ensure_host_key(node_dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let key = host_key_path(node_dir);
    if !key.exists() {
        keygen(&key, name)?;
    }
    Ok(key)
}

/// A new host key, as after a reinstall (or a man in the middle).
pub fn regenerate_host_key(node_dir: &Path, name: &str) -> anyhow::Result<()> {
    keygen(&host_key_path(node_dir), name)
}

/// The known_hosts line for a node: `address ssh-ed25519 AAAA... name`.
pub fn known_hosts_line(node_dir: &Path, address: &str, name: &str) -> anyhow::Result<String> {
    let public = std::fs::read_to_string(host_key_path(node_dir).with_extension("pub")).context("read a host key")?;
    let mut parts = public.split_whitespace();
    let (kind, key) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    Ok(format!("{address} {kind} {key} {name}"))
}

pub fn write_config(node_dir: &Path, address: &str, authorized_keys: &Path) -> anyhow::Result<PathBuf> {
    let config = node_dir.join("sshd_config");
    let text = format!(
        "# kiln lab node: written by `cargo xtask lab up`\n\
         ListenAddress {address}\n\
         Port 22\n\
         HostKey {host_key}\n\
         PidFile none\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AuthorizedKeysFile {authorized}\n\
         StrictModes no\n\
         Subsystem sftp internal-sftp\n\
         UseDNS no\n\
         PrintMotd no\n\
         MaxStartups 200\n\
         MaxSessions 50\n",
        host_key = host_key_path(node_dir).display(),
        authorized = authorized_keys.display(),
    );
    std::fs::write(&config, text).context("write sshd_config")?;
    Ok(config)
}

/// What starting one node's sshd needs; kept in the state file so that a
/// test can restart it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SshdLaunch {
    pub netns: String,
    pub hostname: String,
    pub config: PathBuf,
    pub fixture: PathBuf,
    pub var_lib: PathBuf,
    pub log: PathBuf,
    /// The architecture the node's sessions report (`uname -m`), set with
    /// `setarch`: `i686` makes a node that is not the controller's kind,
    /// for what a mixed rack does. `None`: the machine's own.
    #[serde(default)]
    pub personality: Option<String>,
}

/// Starts sshd in the node's namespaces and returns its pid. `nsenter`,
/// `unshare`, `sh` and `sshd` exec one another, so the pid is sshd's.
pub fn start(l: &SshdLaunch) -> anyhow::Result<u32> {
    std::fs::create_dir_all("/run/sshd").context("create /run/sshd")?;
    std::fs::create_dir_all(&l.var_lib).context("create the node's /var/lib/kiln")?;
    let script = format!(
        "set -e; hostname {host}; \
         mount -t tmpfs kiln-lab-srv /srv; mkdir -p {root}; \
         mount --bind {fixture} {root}; mount -o remount,bind,ro {root}; \
         mount --bind {var_lib} {node_var_lib}; \
         exec {setarch}/usr/sbin/sshd -D -e -f {config}",
        host = quote(&l.hostname),
        root = NODE_ROOT,
        fixture = quote(&l.fixture.to_string_lossy()),
        var_lib = quote(&l.var_lib.to_string_lossy()),
        node_var_lib = NODE_VAR_LIB,
        config = quote(&l.config.to_string_lossy()),
        setarch = l.personality.as_deref().map(|p| format!("setarch {} ", quote(p))).unwrap_or_default(),
    );
    let argv: Vec<String> = [
        "nsenter",
        &format!("--net=/run/netns/{}", l.netns),
        "unshare",
        "--uts",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        &script,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    spawn_detached(&argv, &l.log)
}

pub fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
