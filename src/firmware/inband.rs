//! Versions read on the node itself, from the node model `kiln inspect` produced: each GPU's
//! VBIOS and the driver (NVML), the DMI BIOS, NIC and DPU firmware (ethtool), NVMe firmware.

use crate::checks::pci_id::PciId;
use crate::checks::Component;
use crate::model::{GpuInventory, Node, PciAddress};

use super::recipe::InBand;

/// BlueField-2 and BlueField-3 functions: their ports are DPU ports, not NIC ports.
const BLUEFIELD: [PciId; 2] = [PciId { vendor: 0x15b3, device: 0xa2d6 }, PciId { vendor: 0x15b3, device: 0xa2dc }];

/// One place a version was (or should have been) read.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// In the technician's words: `gpu3 0000:9d:00.0`, `ibp0 0000:1c:00.0`, `DMI BIOS`.
    pub place: String,
    /// `None` when inspection found the part but not its version.
    pub reported: Option<String>,
    pub part: Component,
}

/// Every instance of `what` on the node, or why none could be read (no NVIDIA driver).
pub fn instances(node: &Node, what: InBand, pci_ids: &[PciId]) -> Result<Vec<Instance>, String> {
    let wanted = |address: Option<PciAddress>| -> bool {
        if pci_ids.is_empty() {
            return true;
        }
        let Some(device) = address.and_then(|a| node.pci_device(&a)) else { return false };
        pci_ids.iter().any(|id| id.matches(device))
    };
    let bluefield =
        |address: &PciAddress| node.pci_device(address).is_some_and(|d| BLUEFIELD.iter().any(|id| id.matches(d)));
    match what {
        InBand::Vbios => match &node.gpus {
            GpuInventory::NotInspected { reason } => Err(format!("GPUs not inspected: {reason}")),
            GpuInventory::Inspected { gpus, .. } => Ok(gpus
                .iter()
                .map(|g| Instance {
                    place: format!("gpu{} {}", g.index, g.address_label()),
                    reported: g.vbios_version.clone(),
                    part: Component {
                        kind: "gpu".into(),
                        address: g.pci_address.map(|a| a.to_string()),
                        gpu_index: Some(g.index),
                        serial: g.serial.clone(),
                        name: g.name.clone(),
                        ..Default::default()
                    },
                })
                .collect()),
        },
        InBand::Driver => match &node.gpus {
            GpuInventory::NotInspected { reason } => Err(format!("NVIDIA driver not read: {reason}")),
            GpuInventory::Inspected { driver_version, .. } => Ok(vec![Instance {
                place: "NVIDIA driver".into(),
                reported: Some(driver_version.clone()),
                part: Component { kind: "driver".into(), ..Component::node() },
            }]),
        },
        InBand::Bios => Ok(vec![Instance {
            place: "DMI BIOS".into(),
            reported: node.dmi.bios_version.clone(),
            part: Component { kind: "bios".into(), serial: node.dmi.board_serial.clone(), ..Component::node() },
        }]),
        InBand::Nic | InBand::Dpu => {
            let mut out: Vec<Instance> = Vec::new();
            for port in &node.net {
                let Some(address) = port.pci_address else { continue };
                let is_dpu = bluefield(&address);
                // With pci_ids the recipe says which functions count; without, DPU ports are
                // told from NIC ports by their PCI ids.
                let counts = if pci_ids.is_empty() { is_dpu == (what == InBand::Dpu) } else { wanted(Some(address)) };
                if !counts || out.iter().any(|i| i.part.address.as_deref().is_some_and(|a| address == a)) {
                    continue;
                }
                out.push(Instance {
                    place: format!("{} {address}", port.name),
                    reported: port.firmware.clone(),
                    part: Component {
                        kind: what.as_str().into(),
                        address: Some(address.to_string()),
                        name: Some(port.name.clone()),
                        slot: node.pci_device(&address).and_then(|d| d.slot.clone()),
                        ..Default::default()
                    },
                });
            }
            Ok(out)
        }
        InBand::Nvme => Ok(node
            .disks
            .iter()
            .filter(|d| d.name.starts_with("nvme") || d.pci_address.is_some())
            .filter(|d| wanted(d.pci_address))
            .map(|d| Instance {
                place: match &d.pci_address {
                    Some(a) => format!("{} {a}", d.name),
                    None => d.name.clone(),
                },
                reported: d.firmware.clone(),
                part: Component {
                    kind: "nvme".into(),
                    address: d.pci_address.map(|a| a.to_string()),
                    serial: d.serial.clone(),
                    name: d.model.clone().or_else(|| Some(d.name.clone())),
                    ..Default::default()
                },
            })
            .collect()),
    }
}
