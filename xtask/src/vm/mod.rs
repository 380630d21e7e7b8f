//! The virtual machine of the imaging end-to-end test: Debian's cloud kernel,
//! a busybox initramfs running `kiln agent`, and a bootable disk image
//! deployed as a kiln artifact. `tests/image_qemu.rs` boots them in qemu.

mod build;
mod cpio;
mod disk;
mod initramfs;
mod kernel;
mod modules;
pub mod tools;

pub use build::{build, default_build, VmBuild, VmParts, IMAGE_MIB, IMAGE_NAME, KERNEL_CMDLINE};
