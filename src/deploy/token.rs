//! The boot token: how the installed system's agent (`kiln agent --mode booted`) gets the node's
//! deployment key, which only the imaging environment received (on its kernel command line).
//!
//! After a verified write the imaging agent writes one 4 KiB block at the start of the target's
//! last MiB, outside the image (the image's bytes, and so its digest, are untouched; the backup
//! GPT a booted system may move to the disk's end sits in the last 17 KiB, not here):
//!
//! ```text
//! KILN-BOOT-TOKEN 1\n{"node":"n1","deploy":"...","key":"..."}\n   (then zeros)
//! ```
//!
//! The booted agent reads it (from `--target`, else from each disk under /sys/block), signs its
//! requests with it, and zeroes it once the controller has confirmed the boot. The next image
//! write zeroes it too (the writer clears the target's last MiB first), and so does `kiln image
//! wipe`. A file target too short to hold it past the image is grown by 1 MiB; a disk without
//! 1 MiB to spare after the image cannot hold it, and the write is reported failed.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::auth::{AgentAuth, NodeKey};

const MAGIC: &[u8] = b"KILN-BOOT-TOKEN 1\n";
const BLOCK: usize = 4096;
const MIB: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("target {} ({size} bytes) has no room past the image ({image_size} bytes) for the boot token: it needs the image and 1 MiB more", path.display())]
    NoRoom { path: PathBuf, size: u64, image_size: u64 },
    #[error("write the boot token on {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the token sits on a target of `size` bytes: the start of its last MiB, 4 KiB aligned.
fn offset(size: u64) -> Option<u64> {
    size.checked_sub(MIB).map(|o| o - o % BLOCK as u64)
}

fn size_of(file: &mut File) -> io::Result<u64> {
    // A block device's metadata says 0; seeking to its end gives its size.
    file.seek(SeekFrom::End(0))
}

/// Write `auth` as the boot token on `path`, past the first `image_size` bytes.
pub fn write(path: &Path, image_size: u64, auth: &AgentAuth) -> Result<(), TokenError> {
    let fail = |source| TokenError::Write { path: path.to_path_buf(), source };
    let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(fail)?;
    let mut size = size_of(&mut file).map_err(fail)?;
    let is_file = file.metadata().map_err(fail)?.file_type().is_file();
    let needed = image_size.div_ceil(BLOCK as u64) * BLOCK as u64 + MIB;
    if is_file && size < needed {
        file.set_len(needed).map_err(fail)?;
        size = needed;
    }
    let at = offset(size).filter(|o| *o >= image_size).ok_or(TokenError::NoRoom {
        path: path.to_path_buf(),
        size,
        image_size,
    })?;
    let text = json!({"node": auth.node, "deploy": auth.deploy, "key": auth.key.to_hex()}).to_string();
    let mut block = vec![0u8; BLOCK];
    block[..MAGIC.len()].copy_from_slice(MAGIC);
    block[MAGIC.len()..MAGIC.len() + text.len()].copy_from_slice(text.as_bytes());
    block[MAGIC.len() + text.len()] = b'\n';
    file.write_all_at(&block, at).map_err(fail)?;
    file.sync_data().map_err(fail)
}

/// The token on `path`, if it holds one.
pub fn read(path: &Path) -> io::Result<Option<AgentAuth>> {
    let mut file = File::open(path)?;
    let Some(at) = offset(size_of(&mut file)?) else { return Ok(None) };
    let mut block = vec![0u8; BLOCK];
    file.read_exact_at(&mut block, at)?;
    Ok(parse(&block))
}

fn parse(block: &[u8]) -> Option<AgentAuth> {
    let rest = block.strip_prefix(MAGIC)?;
    let line = &rest[..rest.iter().position(|&b| b == b'\n')?];
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let node = v["node"].as_str()?.to_string();
    let deploy = v["deploy"].as_str()?.to_string();
    let key = NodeKey::from_hex(v["key"].as_str()?)?;
    Some(AgentAuth { node, deploy, key })
}

/// Zero the token on `path` (the controller has confirmed the boot, or will not).
pub fn erase(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let Some(at) = offset(size_of(&mut file)?) else { return Ok(()) };
    file.write_all_at(&[0u8; BLOCK], at)?;
    file.sync_data()
}

/// The first of `candidates` that holds a token, with it.
pub fn find(candidates: &[PathBuf]) -> Option<(PathBuf, AgentAuth)> {
    candidates.iter().find_map(|p| match read(p) {
        Ok(Some(auth)) => Some((p.clone(), auth)),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(disk = %p.display(), error = %e, "no boot token readable");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_written_past_the_image_read_back_and_erased() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = dir.path().join("disk");
        let image: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
        std::fs::write(&disk, &image).expect("image");
        let auth = AgentAuth { node: "n1".into(), deploy: "d1".into(), key: NodeKey::generate().expect("key") };
        assert_eq!(read(&disk).expect("read"), None);
        write(&disk, image.len() as u64, &auth).expect("token");
        let after = std::fs::read(&disk).expect("disk");
        assert_eq!(after.len() as u64, 4 * MIB, "a file is grown by 1 MiB to hold it");
        assert_eq!(&after[..image.len()], &image[..], "the image is untouched");
        assert_eq!(read(&disk).expect("read"), Some(auth.clone()));
        assert_eq!(
            find(&[dir.path().join("none"), disk.clone()]).map(|(p, a)| (p, a.node)),
            Some((disk.clone(), "n1".into()))
        );
        erase(&disk).expect("erase");
        assert_eq!(read(&disk).expect("read"), None);
        assert!(std::fs::read(&disk).expect("disk")[image.len()..].iter().all(|&b| b == 0));

        // A larger disk keeps its size: the token goes at the start of its last MiB.
        std::fs::write(&disk, vec![0xA5u8; (8 * MIB) as usize]).expect("old disk");
        write(&disk, image.len() as u64, &auth).expect("token");
        let bytes = std::fs::read(&disk).expect("disk");
        assert_eq!(bytes.len() as u64, 8 * MIB);
        assert!(bytes[(7 * MIB) as usize..].starts_with(MAGIC));
        assert_eq!(parse(b"KILN-BOOT-TOKEN 1\n{\"node\":\"n1\"}\n"), None);
    }
}
