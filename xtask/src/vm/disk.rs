//! The deployable test image: a small raw disk with an MBR, one FAT
//! partition and syslinux, booting the same kernel with the booted-role
//! initramfs. Made entirely in files (mkfs.fat, mtools, syslinux's mtools
//! installer), never mounted, so it needs no loop device.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::tools::program;

/// syslinux's MBR boot code (Debian package syslinux-common).
pub const MBR_BIN: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// The partition starts at 1 MiB, as partitioning tools place it.
const PART_START_SECTOR: u64 = 2048;
const SECTOR: u64 = 512;

/// Writes `out`: `size_mib` MiB, partition 1 (FAT16, active) holding
/// `vmlinuz`, `initrd.img` and a `syslinux.cfg` that boots them with `cmdline`.
pub fn bootable_disk(
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    size_mib: u64,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let part = work.join("partition.fat");
    let _ = std::fs::remove_file(&part);
    let part_sectors = size_mib * 2048 - PART_START_SECTOR;
    // -h: the partition's offset, which syslinux's boot sector adds to find
    // ldlinux.sys on the disk; -i: a fixed volume id instead of the clock's.
    run(Command::new(program("mkfs.fat"))
        .args(["-C", "-F", "16", "-n", "KILNVM", "-i", "4b494c4e", "-h"])
        .arg(PART_START_SECTOR.to_string())
        .arg(&part)
        .arg((part_sectors / 2).to_string()))
    .context("make the FAT filesystem (Debian package dosfstools)")?;
    let cfg = work.join("syslinux.cfg");
    std::fs::write(&cfg, syslinux_cfg(cmdline)).with_context(|| format!("write {}", cfg.display()))?;
    for (from, name) in [(kernel, "vmlinuz"), (initrd, "initrd.img"), (cfg.as_path(), "syslinux.cfg")] {
        run(Command::new(program("mcopy"))
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-o")
            .arg("-i")
            .arg(&part)
            .arg(from)
            .arg(format!("::{name}")))
        .context("copy into the FAT filesystem (Debian package mtools)")?;
    }
    run(Command::new(program("syslinux")).arg("--install").arg(&part))
        .context("install syslinux (Debian package syslinux)")?;

    let mbr = std::fs::read(MBR_BIN).with_context(|| format!("read {MBR_BIN} (Debian package syslinux-common)"))?;
    if mbr.len() < 440 {
        bail!("{MBR_BIN} is {} bytes, expected at least 440", mbr.len());
    }
    let mut sector0 = [0u8; 512];
    sector0[..440].copy_from_slice(&mbr[..440]);
    sector0[446..462].copy_from_slice(&partition_entry(PART_START_SECTOR, part_sectors));
    sector0[510] = 0x55;
    sector0[511] = 0xAA;

    let mut disk = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("create {}", out.display()))?;
    disk.set_len(size_mib << 20)?;
    disk.write_all(&sector0)?;
    disk.seek(SeekFrom::Start(PART_START_SECTOR * SECTOR))?;
    let mut fat = std::fs::File::open(&part)?;
    std::io::copy(&mut fat, &mut disk).with_context(|| format!("copy the partition into {}", out.display()))?;
    disk.sync_all()?;
    let _ = std::fs::remove_file(&part);
    Ok(())
}

/// An MBR partition entry: active, FAT16 with LBA addressing (0x0e), CHS
/// fields saturated (every BIOS of the last 25 years reads the LBA fields).
fn partition_entry(start: u64, sectors: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = 0x80;
    e[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[4] = 0x0E;
    e[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    e[8..12].copy_from_slice(&(start as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    e
}

fn syslinux_cfg(cmdline: &str) -> String {
    format!(
        "# written by `cargo xtask vm build`: boot the deployed test image at once\n\
         DEFAULT kiln\nPROMPT 0\nTIMEOUT 0\nLABEL kiln\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND {cmdline}\n"
    )
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_entry_is_active_fat16_lba_at_1_mib() {
        let e = partition_entry(2048, 129024);
        assert_eq!(e[0], 0x80);
        assert_eq!(e[4], 0x0E);
        assert_eq!(u32::from_le_bytes([e[8], e[9], e[10], e[11]]), 2048);
        assert_eq!(u32::from_le_bytes([e[12], e[13], e[14], e[15]]), 129024);
    }
}
