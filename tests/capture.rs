//! `kiln capture`: a capture replays as exactly the node it was taken from, on this
//! machine, on the fixture trees, and with files that could not be read.

mod fixture_support;

use std::io;
use std::path::{Path, PathBuf};

use kiln::hw::capture::capture;
use kiln::hw::fixture::{FixtureTree, LinkFiles, PciFunction};
use kiln::hw::root::{FsTree, SysTree};
use kiln::hw::{inspect, open};
use kiln::model::Node;

fn replay(dir: &Path) -> Node {
    let (tree, gpus) = open(Some(dir)).expect("capture opens");
    inspect(tree.as_ref(), gpus.as_ref())
}

#[test]
fn live_machine_capture_replays_identically() {
    let (tree, gpus) = open(None).expect("live machine opens");
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("capture");
    let summary = capture(tree.as_ref(), gpus.as_ref(), &dest).expect("capture succeeds");
    assert!(summary.files > 0, "a capture of a real machine holds files");
    assert!(!summary.node.hostname.is_empty(), "the live machine has a hostname");
    assert_eq!(summary.node.cpus.architecture, std::env::consts::ARCH);
    assert!(summary.node.cpus.threads > 0 && summary.node.memory.total_kib > 0);
    let replayed = replay(&dest);
    assert_eq!(replayed, summary.node, "replaying the capture gives the node that was captured");

    // A capture of the capture is the same node again.
    let again = dir.path().join("again");
    let (tree, gpus) = open(Some(&dest)).expect("capture opens");
    let second = capture(tree.as_ref(), gpus.as_ref(), &again).expect("capture of a capture");
    assert_eq!(second.node, summary.node);
    assert_eq!(replay(&again), summary.node);
}

#[test]
fn fixture_captures_replay_identically() {
    for name in ["hgx-b200", "gb200-nvl72-tray", "hgx-b200-missing-gpu", "hgx-b200-malformed"] {
        let root = fixture_support::shared(name);
        let (tree, gpus) = open(Some(&root)).expect("fixture opens");
        let original = inspect(tree.as_ref(), gpus.as_ref());
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = capture(tree.as_ref(), gpus.as_ref(), &dir.path().join("c")).expect("capture");
        assert_eq!(summary.node, original, "{name}: capturing does not change what is inspected");
        assert_eq!(replay(&dir.path().join("c")), original, "{name}: the capture replays identically");
        if name.starts_with("hgx-b200") {
            // The SMBIOS memory device tables are binary: copied byte for byte, read back whole.
            assert_eq!(original.memory.dimms.len(), 32, "{name}: every DIMM slot");
            let raw = "sys/firmware/dmi/entries/17-0/raw";
            assert_eq!(std::fs::read(dir.path().join("c").join(raw)).ok(), std::fs::read(root.join(raw)).ok());
        }
        // Symlinks stay symlinks, with their relative targets.
        let link = dir.path().join("c/sys/bus/pci/devices").join(original.pci[0].address.to_string());
        let target = std::fs::read_link(&link).expect("bus entry is a symlink");
        assert!(target.starts_with("../../../devices"), "{name}: {}", target.display());
    }
}

#[test]
fn capture_refuses_a_directory_that_is_not_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("x"), "").expect("write");
    let (tree, gpus) = open(None).expect("live");
    let err = capture(tree.as_ref(), gpus.as_ref(), dir.path()).expect_err("must refuse");
    assert!(err.to_string().contains("not an empty directory"), "{err}");
}

/// A tree on disk whose given files fail to read with given OS errors, as a
/// DMI serial does for a non-root user or a flaky device for anyone.
struct Unreadable {
    inner: FsTree,
    failing: Vec<(PathBuf, i32)>,
}

impl SysTree for Unreadable {
    fn read(&self, rel: &Path) -> io::Result<String> {
        match self.failing.iter().find(|(p, _)| p == rel) {
            Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => self.inner.read(rel),
        }
    }
    fn read_bytes(&self, rel: &Path) -> io::Result<Vec<u8>> {
        match self.failing.iter().find(|(p, _)| p == rel) {
            Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => self.inner.read_bytes(rel),
        }
    }
    fn list(&self, rel: &Path) -> io::Result<Vec<String>> {
        self.inner.list(rel)
    }
    fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        self.inner.read_link(rel)
    }
    fn resolve(&self, rel: &Path) -> io::Result<PathBuf> {
        self.inner.resolve(rel)
    }
    fn exists(&self, rel: &Path) -> bool {
        self.inner.exists(rel)
    }
    fn root(&self) -> &Path {
        self.inner.root()
    }
}

#[test]
fn unreadable_and_binary_files_replay_as_they_read_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let mut tree = FixtureTree::new();
    tree.attr("proc/sys/kernel/hostname", "odd-node")
        .attr("kiln/arch", "x86_64")
        .file("proc/meminfo", "MemTotal: 1024 kB\n")
        .attr("sys/class/dmi/id/product_serial", "S123")
        .attr("sys/class/dmi/id/product_name", "Box")
        .attr("sys/class/net/eth0/speed", "-1");
    tree.pci(&PciFunction {
        chain: vec!["0000:00:01.0".into(), "0000:01:00.0".into()],
        class: 0x030200,
        vendor: 0x10de,
        device: 0x2901,
        subsystem: (0x10de, 0x1999),
        driver: Some("nvidia"),
        numa: None,
        link: Some(LinkFiles::trained("32.0", 16)),
        aer: true,
    });
    // Binary junk where a width belongs.
    tree.file("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/current_link_width", [0xffu8, 0xfe, 0x00, 0x31]);
    tree.write(&source).expect("write tree");

    const EACCES: i32 = 13;
    const EIO: i32 = 5;
    let live = Unreadable {
        inner: FsTree::at(&source),
        failing: vec![
            (PathBuf::from("sys/class/dmi/id/product_serial"), EACCES),
            (PathBuf::from("sys/bus/pci/devices/0000:01:00.0/aer_dev_fatal"), EIO),
        ],
    };
    let gpus = kiln::hw::nvml::SnapshotGpuSource::new(&source);
    let node = inspect(&live, &gpus);
    assert_eq!(node.dmi.product_serial, None, "permission denied is no value and no problem");
    assert_eq!(node.dmi.product_name.as_deref(), Some("Box"));
    let paths: Vec<&str> = node.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        ["sys/bus/pci/devices/0000:01:00.0/aer_dev_fatal", "sys/bus/pci/devices/0000:01:00.0/current_link_width",],
        "{:?}",
        node.problems
    );
    assert!(node.problems[0].message.contains("os error 5"), "{}", node.problems[0].message);
    assert!(node.problems[1].message.contains("UTF-8"), "{}", node.problems[1].message);
    let gpu = node.pci_device(&"0000:01:00.0".parse().expect("address")).expect("device kept");
    assert_eq!(gpu.aer, None, "an unreadable AER file is not zero errors");
    assert_eq!(gpu.link.as_ref().and_then(|l| l.current_width), None);

    let dest = dir.path().join("capture");
    let summary = capture(&live, &gpus, &dest).expect("capture");
    assert_eq!(summary.node, node);
    assert_eq!(summary.unreadable, 2, "both failed reads are listed");
    assert_eq!(replay(&dest), node, "the replay fails the same reads the same way");
}
