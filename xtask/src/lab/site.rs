//! A lab split into racks (a site): one rack manifest per `rack_size` nodes and a site manifest
//! listing them, for `kiln rack ... --site`; and a node binary put in place on every node ahead
//! of a run (hard links of one file, stamped as kiln stamps what it pushes), so that a large lab
//! costs no copy of the binary per node.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::manifest::relative;
use super::process::run;
use super::sshd::NODE_ROOT;
use super::state::LabState;

/// Writes `rNN.toml` for each `rack_size` nodes in order (the last rack takes what is left) and
/// `site.toml` listing them, into `dir`; node i of a rack is its `tray = i` when `trays`.
/// Returns the site manifest's path.
pub fn write_site(state: &LabState, rack_size: usize, trays: bool, dir: &Path) -> anyhow::Result<PathBuf> {
    if rack_size == 0 {
        bail!("a rack holds at least one node");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolve {}", dir.display()))?;
    let lab = state.dir.canonicalize().with_context(|| format!("resolve {}", state.dir.display()))?;
    let rel = |name: &str| relative(&dir, &lab.join(name)).display().to_string();
    let mut site = String::from("# The lab as a site, written by the lab (see docs/lab.md).\n[site]\nid = \"lab\"\n");
    for (r, nodes) in state.nodes.chunks(rack_size).enumerate() {
        let file = format!("r{:02}.toml", r + 1);
        let mut t = format!(
            "# Rack {} of the lab site.\n[rack]\nid = \"{}-r{:02}\"\nsite = \"lab\"\nposition = {}\n\n\
             [credentials]\nssh_user = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"{}\"\n",
            r + 1,
            state.prefix,
            r + 1,
            r + 1,
            rel("client_key"),
            rel("known_hosts")
        );
        for (i, n) in nodes.iter().enumerate() {
            t.push_str(&format!(
                "\n[[nodes]]\n# fixture: {}\nname = \"{}\"\naddress = \"{}\"\nmacs = [\"{}\"]\nkiln_root = \"{NODE_ROOT}\"\n",
                n.fixture, n.name, n.address, n.mac
            ));
            if trays {
                t.push_str(&format!("tray = {}\n", i + 1));
            }
        }
        std::fs::write(dir.join(&file), t).with_context(|| format!("write {}", dir.join(&file).display()))?;
        site.push_str(&format!("\n[[racks]]\nmanifest = \"{file}\"\n"));
    }
    let path = dir.join("site.toml");
    std::fs::write(&path, site).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// Puts `binary` at every node's `/var/lib/kiln/bin/kiln` as a hard link (same file system as
/// the lab), with the checksum stamp beside it that kiln's binary check trusts while the file's
/// identity is unchanged: a run then finds kiln current without a push or a hash per node.
pub fn preinstall(state: &LabState, binary: &Path) -> anyhow::Result<()> {
    let mut places = Vec::with_capacity(state.nodes.len());
    for n in &state.nodes {
        let bin = n.sshd.var_lib.join("bin");
        std::fs::create_dir_all(&bin).with_context(|| format!("create {}", bin.display()))?;
        let target = bin.join("kiln");
        let _ = std::fs::remove_file(&target);
        std::fs::hard_link(binary, &target)
            .with_context(|| format!("link {} to {}", binary.display(), target.display()))?;
        places.push(bin);
    }
    // Every link changes the file's ctime, so its identity is read after the last one.
    let sum = run(Command::new("sha256sum").arg(binary))?;
    let sum = sum.split_whitespace().next().context("sha256sum printed nothing")?.to_string();
    let id = run(Command::new("stat").args(["-c", "%s %.9Y %i %.9Z", "--"]).arg(binary))?;
    for bin in places {
        let stamp = bin.join("kiln.sha256");
        std::fs::write(&stamp, format!("{sum}\n{}\n", id.trim()))
            .with_context(|| format!("write {}", stamp.display()))?;
    }
    Ok(())
}
