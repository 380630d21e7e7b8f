//! Kernel modules for the initramfs: the virtio drivers and what they need,
//! in an order `insmod` can load them.
//!
//! A `.deb` holds no `modules.dep` (depmod runs when the package is
//! installed, and we do not install it), so dependencies are read from each
//! module's `.modinfo` section, whose `depends=` entry lists them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The drivers the VM needs: its disk, its NIC, and the PCI transport for both.
pub const VIRTIO: &[&str] = &["virtio_pci", "virtio_blk", "virtio_net"];

/// `wanted` and everything they depend on, dependencies first.
pub fn load_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>> {
    let index = index(&modules_dir.join("kernel"))?;
    let mut order = Vec::new();
    for name in wanted {
        visit(name, &index, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

fn visit(name: &str, index: &HashMap<String, PathBuf>, order: &mut Vec<PathBuf>, path: &mut Vec<String>) -> Result<()> {
    let Some(file) = index.get(name) else {
        bail!("module {name} is not in the kernel package (built in, or renamed?)");
    };
    if order.contains(file) {
        return Ok(());
    }
    if path.iter().any(|p| p == name) {
        bail!("modules depend on each other in a cycle: {}", path.join(" -> "));
    }
    path.push(name.to_string());
    for dep in depends(file)? {
        visit(&dep, index, order, path)?;
    }
    path.pop();
    order.push(file.clone());
    Ok(())
}

/// Module name (with `-` read as `_`, as the kernel does) to its file.
fn index(dir: &Path) -> Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
                out.insert(stem.replace('-', "_"), path);
            }
        }
    }
    Ok(out)
}

/// The `depends=` entry of a module's `.modinfo` strings (NUL-separated
/// `key=value`). Compressed modules (`.ko.xz`) are not handled: Debian's 6.1
/// kernels ship them uncompressed.
fn depends(file: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let key = b"\0depends=";
    let Some(at) = bytes.windows(key.len()).position(|w| w == key) else {
        return Ok(Vec::new());
    };
    let rest = &bytes[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let list = String::from_utf8_lossy(&rest[..end]);
    Ok(list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect())
}
