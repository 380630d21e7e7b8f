//! The VM's kernel: Debian's cloud kernel, downloaded as a package and
//! unpacked into a cache under `target/`, never installed into the system.
//!
//! The cloud flavour is small (about 14 MiB) and boots quickly, but builds the
//! virtio drivers as modules, so the initramfs carries them (see `modules`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::tools::program;

/// The meta-package whose dependency names the current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// An unpacked kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The package it came from, `linux-image-6.1.0-56-cloud-amd64`.
    pub package: String,
    /// `6.1.0-56-cloud-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` inside the unpacked package.
    pub modules: PathBuf,
}

/// The cloud kernel with `modules` (and what they depend on), from `cache`
/// when a previous run unpacked it, else downloaded with `apt-get download`
/// (Debian's mirrors) and unpacked with `dpkg-deb -x`. Only the kernel and
/// those modules are kept (about 20 MiB instead of 110). Without apt, or
/// when the download fails, a kernel already in the cache is used.
pub fn cloud_kernel(cache: &Path, modules: &[&str]) -> Result<Kernel> {
    std::fs::create_dir_all(cache).with_context(|| format!("create {}", cache.display()))?;
    // The marker names the modules kept: a cache made for another list is redone.
    let marker = modules.join("\n");
    let package = match current_package() {
        Ok(p) => p,
        Err(e) => {
            return cached_any(cache, &marker)
                .with_context(|| format!("no kernel in {} and apt cannot name one: {e:#}", cache.display()))
        }
    };
    let unpacked = cache.join(&package);
    if std::fs::read_to_string(unpacked.join(MARKER)).is_ok_and(|m| m == marker) {
        return describe(&package, &unpacked);
    }
    let deb = match download(cache, &package) {
        Ok(deb) => deb,
        Err(e) => {
            return cached_any(cache, &marker)
                .map_err(|_| e)
                .inspect(|k| eprintln!("xtask vm: could not download {package}; using {} from the cache", k.package))
        }
    };
    let _ = std::fs::remove_dir_all(&unpacked);
    let out = Command::new(program("dpkg-deb")).arg("-x").arg(&deb).arg(&unpacked).output().context("run dpkg-deb")?;
    if !out.status.success() {
        bail!("dpkg-deb -x {} failed: {}", deb.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    // The .deb is no longer needed; the cache keeps what the VM uses.
    let _ = std::fs::remove_file(&deb);
    let kernel = describe(&package, &unpacked)?;
    let keep = super::modules::load_order(&kernel.modules, modules)?;
    prune(&kernel.modules.join("kernel"), &keep)?;
    let _ = std::fs::remove_dir_all(unpacked.join("usr"));
    std::fs::write(unpacked.join(MARKER), &marker)?;
    Ok(kernel)
}

/// Marks a complete cache entry; holds the names of the modules it kept.
const MARKER: &str = ".kiln-vm-modules";

/// `apt-get download PACKAGE` into `cache/debs`; as root, after one failure,
/// `apt-get update` and a second try (the mirror may have moved on from the
/// version the local package lists name).
fn download(cache: &Path, package: &str) -> Result<PathBuf> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs)?;
    let fetch = || {
        // apt-get download writes into the current directory.
        Command::new(program("apt-get")).args(["download", "-q", package]).current_dir(&debs).output()
    };
    let mut out = fetch().context("run apt-get download (Debian package apt)")?;
    if !out.status.success() && crate::lab::is_root() {
        let _ = Command::new(program("apt-get")).args(["update", "-qq"]).status();
        out = fetch().context("run apt-get download")?;
    }
    if !out.status.success() {
        bail!("apt-get download {package} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let prefix = format!("{package}_");
    std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb")))
        .with_context(|| format!("apt-get download {package} left no .deb in {}", debs.display()))
}

/// Removes every module file under `dir` but those in `keep`.
fn prune(dir: &Path, keep: &[PathBuf]) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            prune(&path, keep)?;
            // Fails, harmlessly, while the directory still holds a kept module.
            let _ = std::fs::remove_dir(&path);
        } else if !keep.contains(&path) {
            std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// `apt-cache depends linux-image-cloud-amd64` names the versioned package.
fn current_package() -> Result<String> {
    let out = Command::new(program("apt-cache")).args(["depends", META_PACKAGE]).output().context("run apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .map(str::to_string)
        .with_context(|| format!("apt-cache depends {META_PACKAGE} names no kernel (run apt-get update)"))
}

/// Any kernel a previous run unpacked with the same modules.
fn cached_any(cache: &Path, marker: &str) -> Result<Kernel> {
    for entry in std::fs::read_dir(cache)? {
        let path = entry?.path();
        if std::fs::read_to_string(path.join(MARKER)).is_ok_and(|m| m == marker) {
            let package = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            return describe(&package, &path);
        }
    }
    bail!("no kernel in {}", cache.display())
}

fn describe(package: &str, unpacked: &Path) -> Result<Kernel> {
    let release = package.strip_prefix("linux-image-").unwrap_or(package).to_string();
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{release}"));
    let modules = unpacked.join(format!("lib/modules/{release}"));
    if !vmlinuz.is_file() || !modules.is_dir() {
        bail!("{} does not hold boot/vmlinuz-{release} and lib/modules/{release}", unpacked.display());
    }
    Ok(Kernel { package: package.to_string(), release, vmlinuz, modules })
}
