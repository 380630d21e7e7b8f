//! What a node receives through its boot path: the `kiln.*` words of its kernel command line,
//! carrying its deployment key (`auth`), in the iPXE script or the virtual medium the controller
//! serves to that node alone.
//!
//! - Network boot: every machine fetches the same small chain script, `/boot/kiln.ipxe` (no
//!   secret in it), which asks for `/boot/<its MAC>.ipxe`; that script, written per node from the
//!   artifact's kernel command line plus the node's words, is served only to a MAC of a node being
//!   deployed, from that node's address, while its boot is due.
//! - Virtual media: the installer image (`--media FILE`) carries a placeholder on its boot
//!   loader's kernel line, `kiln.settings=` followed by a run of `_`; the controller serves each
//!   node's BMC, and only it, `/boot/media/<node>/FILE` with the placeholder replaced by the node's
//!   words, padded with spaces to the same length (so the image's layout is unchanged). The
//!   replacement is made as the bytes are served: the key is never written to disk.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image::pxe::{ipxe_script, BootEntry, PxeError};
use crate::image::serve::Content;

/// The start of the placeholder an installer image carries on its kernel line.
pub const PLACEHOLDER: &str = "kiln.settings=";
/// The shortest run of `_` after it kiln recognises (anything shorter is not a placeholder).
const MIN_RUN: usize = 16;
/// The longest placeholder read; a run longer than this is cut here.
const MAX_RUN: usize = 4096;

/// The `kiln.*` words a node's imaging environment is booted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWords {
    pub controller: String,
    pub node: String,
    pub deploy: String,
    /// The node's key, hex (see `auth`).
    pub key_hex: String,
    pub target: String,
}

impl NodeWords {
    /// `kiln.controller=... kiln.node=... kiln.deploy=... kiln.key=... kiln.mode=imaging
    /// kiln.target=...`.
    pub fn line(&self) -> String {
        format!(
            "kiln.controller={} kiln.node={} kiln.deploy={} kiln.key={} kiln.mode=imaging kiln.target={}",
            self.controller, self.node, self.deploy, self.key_hex, self.target
        )
    }
}

/// The script every machine gets first: fetch the one named by its own MAC.
pub fn chain_script(base: &str) -> String {
    let base = base.trim_end_matches('/');
    format!(
        "#!ipxe\n# written by kiln: ask for this machine's own script, by its MAC\n\
         isset ${{ip}} || goto retry_dhcp\ngoto have_ip\n:retry_dhcp\ndhcp || goto retry_dhcp\n:have_ip\n\
         chain {base}/boot/${{netX/mac:hexhyp}}.ipxe || goto failed\n\
         :failed\necho kiln: this machine is not being deployed now (or its script failed); shell in 10 seconds\n\
         sleep 10\nshell\n"
    )
}

/// The node's own iPXE script: kernel and initrd from `/files/`, the artifact's command line and
/// the node's words.
pub fn node_script(
    base: &str,
    kernel: &str,
    initrd: &str,
    cmdline: &str,
    words: &NodeWords,
) -> Result<String, PxeError> {
    ipxe_script(&BootEntry {
        server: format!("{}/files", base.trim_end_matches('/')),
        kernel: kernel.to_string(),
        initrd: initrd.to_string(),
        cmdline: format!("{} {}", cmdline.trim(), words.line()).trim().to_string(),
    })
}

/// `52-54-00-77-09-11` or `52:54:00:77:09:11` (any case) as `52:54:00:77:09:11`.
pub fn mac_from_path(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(['-', ':']).collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| parts.join(":").to_ascii_lowercase())
}

/// Where a placeholder sits in a file: its offset and length (`kiln.settings=` and its run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: u64,
    pub len: usize,
}

/// Every placeholder in `path` (one read through the file).
pub fn find_placeholders(path: &Path) -> io::Result<Vec<Slot>> {
    let mut file = crate::input::open_regular(path, crate::input::Input::Artifact)?;
    let key = PLACEHOLDER.as_bytes();
    let keep = key.len() + MAX_RUN;
    let mut buf = vec![0u8; (4 << 20) + keep];
    let (mut held, mut base) = (0usize, 0u64);
    let mut slots: Vec<Slot> = Vec::new();
    loop {
        let n = file.read(&mut buf[held..])?;
        let end = held + n;
        let last = n == 0;
        let mut i = 0;
        // Near the end of the buffer a placeholder may continue in the next read: keep it.
        let scan_to = if last { end } else { end.saturating_sub(keep) };
        while i < scan_to {
            if buf[i..end].starts_with(key) {
                let run = buf[i + key.len()..end].iter().take(MAX_RUN).take_while(|&&b| b == b'_').count();
                let offset = base + i as u64;
                if run >= MIN_RUN && !slots.iter().any(|s| s.offset == offset) {
                    slots.push(Slot { offset, len: key.len() + run });
                    i += key.len() + run;
                    continue;
                }
            }
            i += 1;
        }
        if last {
            return Ok(slots);
        }
        let from = scan_to.min(end);
        buf.copy_within(from..end, 0);
        held = end - from;
        base += from as u64;
    }
}

/// A file served with some of its bytes replaced (the placeholders by a node's words).
pub struct Patched {
    file: File,
    len: u64,
    patches: Arc<Vec<(u64, Vec<u8>)>>,
}

impl Patched {
    /// `path` with each slot holding `words` padded with spaces; `Err` names the need when a slot
    /// is too short.
    pub fn open(path: &Path, slots: &[Slot], words: &str) -> io::Result<Patched> {
        let mut patches = Vec::with_capacity(slots.len());
        for s in slots {
            if words.len() > s.len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "its placeholder at byte {} holds {} characters; the node's settings need {}",
                        s.offset,
                        s.len,
                        words.len()
                    ),
                ));
            }
            let mut bytes = words.as_bytes().to_vec();
            bytes.resize(s.len, b' ');
            patches.push((s.offset, bytes));
        }
        let file = crate::input::open_regular(path, crate::input::Input::Artifact)?;
        let len = file.metadata()?.len();
        Ok(Patched { file, len, patches: Arc::new(patches) })
    }
}

impl Content for Patched {
    fn len(&self) -> u64 {
        self.len
    }

    fn content_type(&self) -> &'static str {
        "application/octet-stream"
    }

    fn copy_range(&mut self, start: u64, end: u64, out: &mut dyn Write) -> io::Result<()> {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            self.file.read_exact_at(&mut buf[..n], at)?;
            for (offset, bytes) in self.patches.iter() {
                let (p_start, p_end) = (*offset, *offset + bytes.len() as u64);
                let (lo, hi) = (p_start.max(at), p_end.min(at + n as u64));
                if lo < hi {
                    let dst = (lo - at) as usize..(hi - at) as usize;
                    let src = (lo - p_start) as usize..(hi - p_start) as usize;
                    buf[dst].copy_from_slice(&bytes[src]);
                }
            }
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        Ok(())
    }
}

/// The installer image for `--boot media`: its path and where its placeholders are.
#[derive(Debug, Clone)]
pub struct Media {
    pub path: PathBuf,
    /// The file name the BMC is given (`/boot/media/<node>/<name>`).
    pub name: String,
    pub slots: Vec<Slot>,
}

impl Media {
    /// Find the placeholder of `path`; an image without one cannot carry a node's key.
    pub fn load(path: &Path) -> Result<Media, String> {
        let slots = find_placeholders(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        if slots.is_empty() {
            return Err(format!(
                "{} has no `{PLACEHOLDER}` placeholder (followed by at least {MIN_RUN} `_`) on a kernel line: the \
                 controller puts each node's key there (docs/imaging.md, \"Deploying\")",
                path.display()
            ));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "media.iso".into());
        Ok(Media { path: path.to_path_buf(), name, slots })
    }

    /// The fewest characters any of its placeholders holds.
    pub fn room(&self) -> usize {
        self.slots.iter().map(|s| s.len).min().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> NodeWords {
        NodeWords {
            controller: "http://10.0.0.1:8080".into(),
            node: "n1".into(),
            deploy: "d1".into(),
            key_hex: "ab".repeat(32),
            target: "/dev/nvme0n1".into(),
        }
    }

    #[test]
    fn the_node_script_boots_the_kernel_with_the_node_words_and_the_chain_names_the_mac() {
        let s =
            node_script("http://10.0.0.1:8080/", "vmlinuz", "initrd.img", "console=ttyS0", &words()).expect("script");
        let kernel = s.lines().find(|l| l.starts_with("kernel ")).expect("kernel line");
        assert!(kernel
            .starts_with("kernel http://10.0.0.1:8080/files/vmlinuz initrd=initrd.img console=ttyS0 kiln.controller="));
        assert!(kernel.contains(&format!("kiln.key={}", "ab".repeat(32))) && kernel.contains("kiln.deploy=d1"));
        let chain = chain_script("http://10.0.0.1:8080");
        assert!(chain.contains("chain http://10.0.0.1:8080/boot/${netX/mac:hexhyp}.ipxe"), "{chain}");
        assert!(!chain.contains("kiln.key"));
        assert_eq!(mac_from_path("52-54-00-AA-09-11").as_deref(), Some("52:54:00:aa:09:11"));
        assert_eq!(mac_from_path("52-54-00-AA-09"), None);
    }

    #[test]
    fn placeholders_are_found_across_reads_and_replaced_as_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("installer.iso");
        let slot_text = format!("{PLACEHOLDER}{}", "_".repeat(300));
        let mut bytes = vec![7u8; (4 << 20) - 10];
        bytes.extend_from_slice(b" linux /vmlinuz quiet ");
        let first = bytes.len();
        bytes.extend_from_slice(slot_text.as_bytes());
        bytes.extend_from_slice(b"\nkiln.settings=___\n");
        bytes.extend_from_slice(slot_text.as_bytes());
        bytes.extend_from_slice(&[9u8; 5000]);
        std::fs::write(&path, &bytes).expect("write");
        let media = Media::load(&path).expect("has a placeholder");
        assert_eq!(media.slots.len(), 2, "the short run is no placeholder: {:?}", media.slots);
        assert_eq!(media.slots[0], Slot { offset: first as u64, len: slot_text.len() });
        assert_eq!(media.room(), slot_text.len());

        let line = words().line();
        let mut served = Patched::open(&path, &media.slots, &line).expect("fits");
        assert_eq!(served.len(), bytes.len() as u64);
        let mut whole = Vec::new();
        served.copy_range(0, served.len(), &mut whole).expect("serve");
        let mut want = bytes.clone();
        for s in &media.slots {
            let mut patch = line.as_bytes().to_vec();
            patch.resize(s.len, b' ');
            want[s.offset as usize..s.offset as usize + s.len].copy_from_slice(&patch);
        }
        assert_eq!(whole, want);
        // A range that cuts through a placeholder gets the matching part of the words.
        let mut part = Vec::new();
        served.copy_range(first as u64 + 5, first as u64 + 40, &mut part).expect("range");
        assert_eq!(part, &want[first + 5..first + 40]);
        let err = Patched::open(&path, &media.slots, &"x".repeat(400)).err().expect("too long");
        assert!(err.to_string().contains("the node's settings need 400"), "{err}");
        std::fs::write(&path, b"no placeholder").expect("write");
        assert!(Media::load(&path).expect_err("none").contains("has no `kiln.settings=` placeholder"));
    }
}
