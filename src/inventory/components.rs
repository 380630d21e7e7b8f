//! `components_of`: the parts of a node as one flat list, the per-run snapshot the inventory keeps.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::model::{Node, PciAddress, PciDevice};

/// One part of a node as recorded with a run.
///
/// `kind` is one of `system`, `board`, `chassis`, `bios`, `cpu`, `memory`,
/// `gpu`, `nic`, `dpu`, `nvswitch`, `nvme`, `disk`, `pci`. For a NIC or DPU,
/// `serial` holds the MAC (Ethernet) or port GUID (InfiniBand) of its first
/// port, which identifies the card when the board serial cannot be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "LabelledComponent")]
pub struct ComponentRecord {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// What the fields above do not hold (GPU UUID and index, disk size, ports).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A component as JSON shows it: its place label (`ComponentRecord::label`) first.
#[derive(Serialize)]
struct LabelledComponent {
    label: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    firmware: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    extra: Map<String, Value>,
}

impl From<ComponentRecord> for LabelledComponent {
    fn from(c: ComponentRecord) -> Self {
        LabelledComponent {
            label: c.label(),
            kind: c.kind,
            slot: c.slot,
            address: c.address,
            vendor: c.vendor,
            model: c.model,
            serial: c.serial,
            firmware: c.firmware,
            extra: c.extra,
        }
    }
}

impl ComponentRecord {
    fn new(kind: &str) -> Self {
        ComponentRecord {
            kind: kind.to_string(),
            slot: None,
            address: None,
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            extra: Map::new(),
        }
    }

    /// Where the part sits: its physical slot when the firmware names one,
    /// else its address. Two runs' snapshots are matched on kind and place.
    pub fn place(&self) -> Option<&str> {
        self.slot.as_deref().or(self.address.as_deref())
    }

    /// The part's place as kiln names it everywhere (`checks::place_label`): `gpu3 slot 4
    /// 0000:1b:00.0` (NVML index, physical slot or NVL72 tray position, address), `nic
    /// 0000:1c:00.0`, `bios`.
    pub fn label(&self) -> String {
        // A firmware item is named by its Redfish Id (`firmware FW_BMC_0`), not a physical place.
        if self.kind == "firmware" {
            return match self.place() {
                Some(place) => format!("firmware {place}"),
                None => "firmware".to_string(),
            };
        }
        let index = self.extra.get("index").and_then(Value::as_u64).and_then(|i| u32::try_from(i).ok());
        let index = index.filter(|_| self.kind == "gpu");
        let tray = || {
            let n = |k: &str| self.extra.get(k).and_then(Value::as_u64);
            Some(format!("tray {} slot {} module {}", n("tray_index")?, n("slot_number")?, n("module_id")?))
        };
        let slot = self.slot.clone().or_else(|| if self.kind == "gpu" { tray() } else { None });
        crate::checks::place_label(&self.kind, index, slot.as_deref(), self.address.as_deref())
    }

    /// The part as a finding names it: the same label (`checks::place_label`).
    pub fn finding_component(&self) -> crate::checks::Component {
        let index = self.extra.get("index").and_then(Value::as_u64).and_then(|i| u32::try_from(i).ok());
        crate::checks::Component {
            kind: self.kind.clone(),
            address: self.address.clone(),
            gpu_index: index.filter(|_| self.kind == "gpu"),
            serial: self.serial.clone(),
            slot: self.slot.clone(),
            name: self.model.clone(),
        }
    }

    fn extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        if !value.is_null() {
            self.extra.insert(key.to_string(), value);
        }
        self
    }
}

/// PCI device ids of BlueField DPUs (BlueField-2, BlueField-3 NIC functions).
const BLUEFIELD_IDS: [(u16, u16); 2] = [(0x15b3, 0xa2d6), (0x15b3, 0xa2dc)];
const NVIDIA: u16 = 0x10de;

/// The kind of a PCI function judged by its ids and class alone.
fn pci_kind(dev: &PciDevice) -> &'static str {
    if BLUEFIELD_IDS.contains(&(dev.vendor_id, dev.device_id)) {
        "dpu"
    } else if dev.vendor_id == NVIDIA && dev.base_class() == 0x03 {
        "gpu"
    } else if dev.vendor_id == NVIDIA && dev.class_subclass() == 0x0680 {
        "nvswitch"
    } else if dev.base_class() == 0x02 {
        "nic"
    } else if dev.class_subclass() == 0x0108 {
        "nvme"
    } else {
        "pci"
    }
}

fn pci_id(dev: &PciDevice) -> String {
    format!("{:04x}:{:04x}", dev.vendor_id, dev.device_id)
}

/// A record for a PCI function, with what sysfs says about it.
fn from_pci(kind: &str, dev: &PciDevice) -> ComponentRecord {
    let mut c = ComponentRecord::new(kind);
    c.slot = dev.slot.clone();
    c.address = Some(dev.address.to_string());
    c.vendor = Some(dev.vendor_name.clone().unwrap_or_else(|| format!("{:04x}", dev.vendor_id)));
    c.model = Some(dev.device_name.clone().unwrap_or_else(|| pci_id(dev)));
    c.extra("pci_id", pci_id(dev)).extra("class", format!("0x{:06x}", dev.class)).extra("driver", dev.driver.clone())
}

/// Every part of `node` worth tracking across runs, in a stable order:
/// DMI identity (system, board, chassis, BIOS), CPU, memory, GPUs, NICs and
/// DPUs, NVSwitches, disks, then every other PCI function that is not a bridge.
///
/// GPUs come from NVML (serial, VBIOS as firmware, UUID) joined to their PCI
/// function by address; a GPU that PCI shows and NVML does not (no driver) is
/// still recorded, without serial. Network ports are grouped per PCI function.
/// Ports without a PCI function (virtual interfaces) are not hardware and are
/// left out, and so are bridges (root ports, switch ports), which would repeat
/// the PCI tree without identifying a part.
pub fn components_of(node: &Node) -> Vec<ComponentRecord> {
    let mut out = dmi_components(node);
    out.push(cpu_component(node));
    if node.memory.total_kib > 0 {
        out.push(ComponentRecord::new("memory").extra("total_kib", node.memory.total_kib));
    }
    // Populated DIMM slots, placed by the board's slot name.
    for d in node.memory.dimms.iter().filter(|d| d.populated()) {
        let mut c = ComponentRecord::new("dimm");
        c.slot = Some(d.locator.clone());
        c.vendor = d.manufacturer.clone();
        c.model = d.part_number.clone();
        c.serial = d.serial.clone();
        out.push(
            c.extra("size_bytes", d.size_bytes)
                .extra("type", d.memory_type.clone())
                .extra("speed_mts", d.speed_mts)
                .extra("bank", d.bank_locator.clone()),
        );
    }
    let mut covered: BTreeSet<PciAddress> = BTreeSet::new();
    for gpu in node.gpus.gpus() {
        let pci = gpu.pci_address.and_then(|a| node.pci_device(&a));
        let mut c = match pci {
            Some(dev) => from_pci("gpu", dev),
            None => ComponentRecord { address: gpu.pci_address.map(|a| a.to_string()), ..ComponentRecord::new("gpu") },
        };
        c.vendor = c.vendor.or_else(|| Some("NVIDIA".to_string()));
        c.model = gpu.name.clone().or(c.model);
        c.serial = gpu.serial.clone();
        c.firmware = gpu.vbios_version.clone();
        c = c
            .extra("index", gpu.index)
            .extra("uuid", gpu.uuid.clone())
            .extra("board_part_number", gpu.board_part_number.clone())
            .extra("memory_total_bytes", gpu.memory_total_bytes);
        if let Some(p) = &gpu.platform {
            c = c.extra("module_id", p.module_id).extra("tray_index", p.tray_index).extra("slot_number", p.slot_number);
        }
        covered.extend(gpu.pci_address);
        out.push(c);
    }
    let unseen_gpus: Vec<&PciDevice> =
        node.pci.iter().filter(|d| pci_kind(d) == "gpu" && !covered.contains(&d.address)).collect();
    for dev in unseen_gpus {
        covered.insert(dev.address);
        out.push(from_pci("gpu", dev).extra("seen_by_nvml", false));
    }
    out.extend(network_components(node, &mut covered));
    let disks = disk_components(node, &mut covered);
    for dev in node.pci.iter().filter(|d| pci_kind(d) == "nvswitch") {
        covered.insert(dev.address);
        out.push(from_pci("nvswitch", dev));
    }
    out.extend(disks);
    for dev in node.pci.iter().filter(|d| !d.is_bridge() && !covered.contains(&d.address)) {
        out.push(from_pci(pci_kind(dev), dev));
    }
    out
}

fn dmi_components(node: &Node) -> Vec<ComponentRecord> {
    let d = &node.dmi;
    let parts = [
        ("system", &d.system_vendor, &d.product_name, &d.product_serial, &None),
        ("board", &d.board_vendor, &d.board_name, &d.board_serial, &None),
        ("chassis", &None, &None, &d.chassis_serial, &None),
        ("bios", &d.bios_vendor, &None, &None, &d.bios_version),
    ];
    let mut out = Vec::new();
    for (kind, vendor, model, serial, firmware) in parts {
        let mut c = ComponentRecord::new(kind);
        c.vendor = vendor.clone();
        c.model = model.clone();
        c.serial = serial.clone();
        c.firmware = firmware.clone();
        c = match kind {
            "system" => c.extra("uuid", d.product_uuid.clone()),
            "bios" => c.extra("date", d.bios_date.clone()),
            _ => c,
        };
        let empty = c.vendor.is_none() && c.model.is_none() && c.serial.is_none() && c.firmware.is_none();
        if !empty {
            out.push(c);
        }
    }
    out
}

fn cpu_component(node: &Node) -> ComponentRecord {
    let cpus = &node.cpus;
    let mut c = ComponentRecord::new("cpu");
    c.model = cpus.model.clone();
    c.extra("architecture", cpus.architecture.clone())
        .extra("sockets", cpus.sockets)
        .extra("cores", cpus.cores)
        .extra("threads", cpus.threads)
        .extra("numa_nodes", cpus.numa_nodes.len())
}

/// One record per PCI function that has network ports; the first port (by
/// name) gives the serial (its MAC or GUID) and the firmware.
fn network_components(node: &Node, covered: &mut BTreeSet<PciAddress>) -> Vec<ComponentRecord> {
    let mut by_function: BTreeMap<PciAddress, Vec<&crate::model::NetPort>> = BTreeMap::new();
    for port in &node.net {
        if let Some(address) = port.pci_address {
            by_function.entry(address).or_default().push(port);
        }
    }
    let mut out = Vec::new();
    for (address, mut ports) in by_function {
        if covered.contains(&address) {
            continue;
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        let pci = node.pci_device(&address);
        let mut c = match pci {
            Some(dev) if pci_kind(dev) == "dpu" => from_pci("dpu", dev),
            Some(dev) => from_pci("nic", dev),
            None => ComponentRecord { address: Some(address.to_string()), ..ComponentRecord::new("nic") },
        };
        c.serial = ports.iter().find_map(|p| p.address.clone());
        c.firmware = ports.iter().find_map(|p| p.firmware.clone());
        let listed: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "kind": p.kind,
                    "address": p.address,
                    "speed_mbps": p.speed_mbps,
                    "state": p.state,
                })
            })
            .collect();
        c = c.extra("ports", listed);
        covered.insert(address);
        out.push(c);
    }
    out
}

fn disk_components(node: &Node, covered: &mut BTreeSet<PciAddress>) -> Vec<ComponentRecord> {
    let mut out = Vec::new();
    for disk in &node.disks {
        let kind = if disk.name.starts_with("nvme") { "nvme" } else { "disk" };
        let pci_address = disk.pci_address;
        let pci = pci_address.and_then(|a| node.pci_device(&a));
        let mut c = ComponentRecord::new(kind);
        c.slot = pci.and_then(|d| d.slot.clone());
        // A disk not on PCI (SATA, SAS) is placed by its kernel name.
        c.address = Some(pci_address.map_or_else(|| disk.name.clone(), |a| a.to_string()));
        c.vendor = pci.and_then(|d| d.vendor_name.clone());
        c.model = disk.model.clone();
        c.serial = disk.serial.clone();
        c.firmware = disk.firmware.clone();
        c = c
            .extra("name", disk.name.clone())
            .extra("size_bytes", disk.size_bytes)
            .extra("rotational", disk.rotational);
        if let Some(a) = pci_address {
            covered.insert(a);
        }
        out.push(c);
    }
    out
}
