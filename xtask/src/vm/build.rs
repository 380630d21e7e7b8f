//! Assembles everything the VM test boots: the network-boot imaging
//! environment (kernel + initrd) and the deployable disk image as a kiln
//! artifact (`kiln image build` over a recipe whose base is the raw disk).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::initramfs::{self, Role};
use super::{disk, kernel, modules, tools};

/// The artifact's name (`kiln-vm.raw`, `kiln-vm.manifest.json`, ...).
pub const IMAGE_NAME: &str = "kiln-vm";
/// The kernel command line of both environments (the recipe's
/// `kernel_cmdline`): the console on the first serial port, where qemu
/// captures it.
pub const KERNEL_CMDLINE: &str = "console=ttyS0,115200n8";
/// The deployed image's size. Small, because the booted agent hashes all of it.
pub const IMAGE_MIB: u64 = 64;

/// What to build, and where.
#[derive(Debug, Clone)]
pub struct VmBuild {
    /// The kiln binary both environments run.
    pub kiln: PathBuf,
    /// Where the downloaded kernel is kept between builds (`target/vm/cache`).
    pub cache: PathBuf,
    /// Where the outputs go; rebuilt every time.
    pub out: PathBuf,
    /// The controller the deployed image reports to once booted from disk
    /// (`kiln.controller=` in its boot configuration).
    pub controller: String,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct VmParts {
    /// `linux-image-6.1.0-56-cloud-amd64`, the Debian package of the kernel.
    pub kernel_package: String,
    /// `OUT/boot`: `vmlinuz` and `initrd.img` of the imaging environment.
    pub boot_dir: PathBuf,
    /// `OUT/artifact/kiln-vm.manifest.json` and its `.raw` and `.bmap.json`.
    pub manifest: PathBuf,
    pub image: PathBuf,
    pub image_sha256: String,
    pub image_size: u64,
    /// Seconds the build took.
    pub seconds: f64,
}

/// The default places under the workspace's `target/`.
pub fn default_build(kiln: PathBuf, controller: &str) -> Result<VmBuild> {
    let target = crate::lab::repo_root()?.join("target");
    Ok(VmBuild {
        kiln,
        cache: target.join("vm/cache"),
        out: target.join("vm/build"),
        controller: controller.to_string(),
    })
}

pub fn build(b: &VmBuild) -> Result<VmParts> {
    let started = Instant::now();
    if !b.controller.starts_with("http://") || b.controller.contains(char::is_whitespace) {
        bail!(
            "controller URL {:?} must be http:// and have no spaces (it goes on a kernel command line)",
            b.controller
        );
    }
    let kernel = kernel::cloud_kernel(&b.cache, modules::VIRTIO).context("get Debian's cloud kernel")?;
    let modules = modules::load_order(&kernel.modules, modules::VIRTIO)?;
    let busybox = tools::find("busybox").context("no busybox (Debian package busybox-static)")?;

    let _ = std::fs::remove_dir_all(&b.out);
    // `work` (the stripped binary, the FAT partition, the base disk and its
    // recipe) is removed at the end: the artifact holds its own copy of the disk.
    let (boot, work, artifact) = (b.out.join("boot"), b.out.join("work"), b.out.join("artifact"));
    for d in [&boot, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }

    let common = initramfs::common(&b.kiln, &busybox, &modules, &work)?;
    let initrd = |role| {
        let mut bytes = initramfs::init_archive(role);
        bytes.extend_from_slice(&common);
        bytes
    };
    std::fs::copy(&kernel.vmlinuz, boot.join("vmlinuz")).context("copy the kernel")?;
    std::fs::write(boot.join("initrd.img"), initrd(Role::Imaging)).context("write the imaging initrd")?;
    let booted_initrd = work.join("initrd-booted.img");
    std::fs::write(&booted_initrd, initrd(Role::Booted)).context("write the booted initrd")?;

    let raw = work.join(format!("{IMAGE_NAME}.raw"));
    let cmdline = format!("{KERNEL_CMDLINE} kiln.mode=booted kiln.target=/dev/vda kiln.controller={}", b.controller);
    disk::bootable_disk(&kernel.vmlinuz, &booted_initrd, &cmdline, IMAGE_MIB, &work, &raw)?;
    let recipe = work.join(format!("{IMAGE_NAME}.toml"));
    std::fs::write(&recipe, recipe_text(&sha256sum(&raw)?, &kernel.release))
        .with_context(|| format!("write {}", recipe.display()))?;

    let out = Command::new(&b.kiln)
        .args(["image", "build"])
        .arg(&recipe)
        .arg("--out")
        .arg(&artifact)
        .env_remove("KILN_LOG")
        .output()
        .with_context(|| format!("run {} image build", b.kiln.display()))?;
    if !out.status.success() {
        bail!(
            "kiln image build {} failed ({}): {}",
            recipe.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bmap_path = artifact.join(format!("{IMAGE_NAME}.bmap.json"));
    let bmap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bmap_path).with_context(|| format!("read {}", bmap_path.display()))?)
            .with_context(|| format!("parse {}", bmap_path.display()))?;
    let image_sha256 = bmap["image_sha256"].as_str().context("block map without image_sha256")?.to_string();
    let image_size = bmap["image_size"].as_u64().context("block map without image_size")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(VmParts {
        kernel_package: kernel.package,
        boot_dir: boot,
        manifest: artifact.join(format!("{IMAGE_NAME}.manifest.json")),
        image: artifact.join(format!("{IMAGE_NAME}.raw")),
        image_sha256,
        image_size,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn sha256sum(path: &Path) -> Result<String> {
    let out = Command::new(tools::program("sha256sum")).arg(path).output().context("run sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(h.to_string()),
        _ => bail!("sha256sum {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()),
    }
}

fn recipe_text(sha256: &str, release: &str) -> String {
    format!(
        r#"# Written by `cargo xtask vm build`: the VM test's deployable image.
name = "{IMAGE_NAME}"
description = "MBR + syslinux disk booting Debian's {release} kernel into kiln agent --mode booted"
arch = "x86_64"
platforms = ["generic"]
kernel_cmdline = "{KERNEL_CMDLINE}"

[base]
path = "{IMAGE_NAME}.raw"
sha256 = "{sha256}"
format = "raw"

[cloud_init]
hostname = "{{node}}"
"#
    )
}
