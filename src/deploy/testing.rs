//! Values the deploy unit tests share: a rack node and an offer.

use crate::rack::RackNode;

use super::board::Offer;

/// The sha256 the test offer names.
pub const SHA: &str = "fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01";

/// A rack node with an address, MACs and, when given, a BMC.
pub fn node(name: &str, address: &str, macs: &[&str], bmc: Option<&str>) -> RackNode {
    RackNode {
        bmc: bmc.map(str::to_string),
        macs: macs.iter().map(|m| m.to_string()).collect(),
        ..RackNode::new(name, address)
    }
}

/// A 4 KiB image offered for /dev/vda.
pub fn offer() -> Offer {
    Offer {
        image_url: "http://c/files/i.raw".into(),
        bmap_url: "http://c/files/i.bmap.json".into(),
        image_sha256: SHA.into(),
        bmap_sha256: SHA.replace('f', "0"),
        image_size: 4096,
        target: "/dev/vda".into(),
    }
}
