//! The agent's settings from the kernel command line (`kiln.controller=`, `kiln.node=`,
//! `kiln.target=`, `kiln.mode=`, `kiln.stall_timeout=`, and the node's proof for this
//! deployment, `kiln.deploy=` and `kiln.key=`): a node booted into the imaging environment by PXE
//! or virtual media has no other place to be told where its controller is, or who it is.

/// The `kiln.*` settings found on a kernel command line; absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdlineSettings {
    pub controller: Option<String>,
    pub node: Option<String>,
    pub target: Option<String>,
    pub mode: Option<String>,
    /// Unparsed: the agent parses it like `--stall-timeout` and names the key when it cannot.
    pub stall_timeout: Option<String>,
    /// The deployment the key is for.
    pub deploy: Option<String>,
    /// The node's key for that deployment (hex); `Debug` never shows it.
    pub key: Option<HiddenKey>,
}

/// The `kiln.key=` text, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct HiddenKey(pub String);

impl std::fmt::Debug for HiddenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Parse `/proc/cmdline` text. Words are split on whitespace; a value cannot hold a space (the
/// iPXE script kiln writes refuses such values). The last occurrence of a key wins, as with the
/// kernel's own parameters.
pub fn parse_cmdline(text: &str) -> CmdlineSettings {
    let mut s = CmdlineSettings::default();
    for word in text.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else { continue };
        if value.is_empty() {
            continue;
        }
        let slot = match key {
            "kiln.controller" => &mut s.controller,
            "kiln.node" => &mut s.node,
            "kiln.target" => &mut s.target,
            "kiln.mode" => &mut s.mode,
            "kiln.stall_timeout" => &mut s.stall_timeout,
            "kiln.deploy" => &mut s.deploy,
            "kiln.key" => {
                s.key = Some(HiddenKey(value.to_string()));
                continue;
            }
            _ => continue,
        };
        *slot = Some(value.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiln_keys_are_read_and_others_ignored() {
        let s = parse_cmdline(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 kiln.controller=http://10.0.0.1:8080 kiln.node=n1 \
             kiln.target=/dev/nvme0n1 kiln.mode= kiln.mode=booted kiln.stall_timeout=5m quiet\n",
        );
        assert_eq!(s.controller.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(s.node.as_deref(), Some("n1"));
        assert_eq!(s.target.as_deref(), Some("/dev/nvme0n1"));
        assert_eq!(s.mode.as_deref(), Some("booted"));
        assert_eq!(s.stall_timeout.as_deref(), Some("5m"));
        assert_eq!(parse_cmdline("ro quiet"), CmdlineSettings::default());
        let s = parse_cmdline("kiln.deploy=d1 kiln.key=abcd kiln.settings=______");
        assert_eq!((s.deploy.as_deref(), s.key.as_ref().map(|k| k.0.as_str())), (Some("d1"), Some("abcd")));
        assert!(!format!("{s:?}").contains("abcd"), "the key never shows");
    }
}
