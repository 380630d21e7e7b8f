//! The cloud-init NoCloud seed (`user-data`, `meta-data`) for an image.
//!
//! Both files are written as JSON after the `#cloud-config` line: JSON is
//! valid YAML, so cloud-init reads them as it reads any cloud-config, and
//! kiln needs no YAML writer whose quoting could go wrong.

use serde::Serialize;
use serde_json::{json, Value};

use super::digest::Digest;
use super::recipe::{render_hostname, Recipe};

/// What the booted system says about itself in `/etc/kiln/image.json`, so
/// the controller can confirm a node came up on the image it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageIdentity {
    pub recipe: String,
    pub image_sha256: Digest,
    pub nvidia_driver: Option<String>,
    pub cuda: Option<String>,
}

/// A rendered seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub user_data: String,
    pub meta_data: String,
}

/// Where the agent binary lands on the node.
const AGENT_PATH: &str = "/usr/local/bin/kiln";

/// Render the seed for `node` (or, without a node, the parts common to all
/// nodes: no hostname). Fails only when the hostname pattern gives an
/// invalid hostname for this node's name.
pub fn render(recipe: &Recipe, identity: &ImageIdentity, node: Option<&str>) -> Result<Seed, String> {
    let hostname = node.map(|n| render_hostname(&recipe.cloud_init.hostname, n)).transpose()?;
    let mut user = serde_json::Map::new();
    if let Some(h) = &hostname {
        user.insert("hostname".into(), json!(h));
        user.insert("preserve_hostname".into(), json!(false));
    }
    if !recipe.cloud_init.ssh_authorized_keys.is_empty() {
        user.insert("ssh_authorized_keys".into(), json!(recipe.cloud_init.ssh_authorized_keys));
    }
    let identity_json = serde_json::to_string_pretty(identity).unwrap_or_default() + "\n";
    let mut files = vec![json!({"path": "/etc/kiln/image.json", "permissions": "0644", "content": identity_json})];
    let mut runcmd: Vec<Value> = Vec::new();
    if let Some(agent) = &recipe.cloud_init.agent {
        let exec = std::iter::once(AGENT_PATH.to_string())
            .chain(agent.args.iter().map(|a| systemd_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        // The agent on an installed system reports what booted, once per
        // boot, and is done: it retries the controller itself (--wait-for)
        // and is not restarted after that, so a node without a controller
        // is not left polling for ever.
        let unit = format!(
            "[Unit]\nDescription=kiln node agent\nWants=network-online.target\nAfter=network-online.target\n\n\
             [Service]\nExecStart={exec}\nRestart=no\n\n[Install]\nWantedBy=multi-user.target\n"
        );
        files.push(json!({"path": "/etc/systemd/system/kiln-agent.service", "permissions": "0644", "content": unit}));
        runcmd.push(json!(["curl", "-fsSL", "--retry", "5", "-o", AGENT_PATH, agent.url]));
        if let Some(sum) = &agent.sha256 {
            // A binary that is not the one named in the recipe is removed and
            // never started.
            runcmd.push(json!([
                "sh",
                "-c",
                format!("echo '{sum}  {AGENT_PATH}' | sha256sum -c - || {{ rm -f {AGENT_PATH}; exit 1; }}")
            ]));
        }
        runcmd.push(json!(["chmod", "0755", AGENT_PATH]));
        runcmd.push(json!(["systemctl", "daemon-reload"]));
        runcmd.push(json!(["systemctl", "enable", "--now", "kiln-agent.service"]));
    }
    user.insert("write_files".into(), Value::Array(files));
    if !runcmd.is_empty() {
        user.insert("runcmd".into(), Value::Array(runcmd));
    }
    let user_data =
        format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&Value::Object(user)).unwrap_or_default());

    let mut instance = format!("kiln-{}-{}", recipe.name, identity.image_sha256.short());
    if let Some(n) = node {
        instance.push('-');
        instance.push_str(n);
    }
    let mut meta = serde_json::Map::new();
    meta.insert("instance-id".into(), json!(instance));
    if let Some(h) = &hostname {
        meta.insert("local-hostname".into(), json!(h));
    }
    let meta_data = serde_json::to_string_pretty(&Value::Object(meta)).unwrap_or_default() + "\n";
    Ok(Seed { user_data, meta_data })
}

/// Quote an argument for a systemd `ExecStart=` line.
fn systemd_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c)) {
        arg.to_string()
    } else {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::recipe::parse;
    use std::path::Path;

    fn recipe() -> Recipe {
        let text = r#"name = "t"
description = "d"
arch = "aarch64"
platforms = ["gb200-nvl72-tray"]
kernel_cmdline = "console=ttyAMA0"
[base]
url = "https://example.com/x.img"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
format = "qcow2"
[nvidia]
driver = "580.65.06"
cuda = "13.0"
[cloud_init]
hostname = "{node}.rack1"
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln tech@site"]
[cloud_init.agent]
url = "http://10.0.0.1:8080/kiln-aarch64"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
args = ["agent", "--controller", "http://10.0.0.1:8080", "--label", "two words"]
"#;
        parse(text, Path::new("t.toml")).expect("valid recipe")
    }

    fn identity() -> ImageIdentity {
        ImageIdentity {
            recipe: "t".into(),
            image_sha256: Digest::of(b"img"),
            nvidia_driver: Some("580.65.06".into()),
            cuda: Some("13.0".into()),
        }
    }

    #[test]
    fn user_data_is_cloud_config_that_parses_as_json() {
        let seed = render(&recipe(), &identity(), Some("gpu07")).expect("render");
        let body = seed.user_data.strip_prefix("#cloud-config\n").expect("header");
        let v: Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["hostname"], "gpu07.rack1");
        assert_eq!(v["ssh_authorized_keys"][0], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln tech@site");
        let unit = v["write_files"][1]["content"].as_str().expect("unit");
        assert!(unit
            .contains("ExecStart=/usr/local/bin/kiln agent --controller http://10.0.0.1:8080 --label \"two words\""));
        // Once per boot: an agent that is done (or gave up) is not started again and again.
        assert!(unit.contains("\nRestart=no\n"), "{unit}");
        let cmds = v["runcmd"].to_string();
        assert!(cmds.contains("sha256sum -c"), "{cmds}");
        let image: Value =
            serde_json::from_str(v["write_files"][0]["content"].as_str().expect("content")).expect("identity json");
        assert_eq!(image["image_sha256"], Digest::of(b"img").to_string());
        let meta: Value = serde_json::from_str(&seed.meta_data).expect("meta json");
        assert_eq!(meta["local-hostname"], "gpu07.rack1");
        assert!(meta["instance-id"].as_str().expect("id").ends_with("-gpu07"));
    }

    #[test]
    fn without_a_node_there_is_no_hostname() {
        let seed = render(&recipe(), &identity(), None).expect("render");
        assert!(!seed.user_data.contains("\"hostname\""));
        assert!(!seed.meta_data.contains("local-hostname"));
        assert!(render(&recipe(), &identity(), Some("bad_name")).is_err());
    }
}
