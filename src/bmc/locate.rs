//! The locate LED, so a technician finds the tray a finding names.
//!
//! Redfish 2020.3 added `LocationIndicatorActive` (a boolean) to Chassis and ComputerSystem and
//! deprecated `IndicatorLED` (`Lit`, `Blinking`, `Off`); older BMCs, and the sushy-tools
//! emulator, have only the latter. The system's chassis (the enclosure a technician walks to)
//! is tried first, then the system; on each, `LocationIndicatorActive` before `IndicatorLED`.
//! The recorded GH200 BMC has both properties on `Systems/System_0` and neither on its chassis
//! `BMC_0`. A change is read back: accepted is not done.

use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::redfish::link_list;
use super::{Bmc, BmcError, RedfishBmc};

/// The locate indicator as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Locate {
    /// The resource carrying it.
    pub resource: String,
    /// `LocationIndicatorActive` or `IndicatorLED`.
    pub property: &'static str,
    pub on: bool,
    /// The value as the BMC reports it (`true`, `Blinking`).
    pub value: String,
}

impl RedfishBmc {
    /// The locate indicator's state.
    pub fn locate(&self) -> Result<Locate, BmcError> {
        let (resource, body) = self.locate_resource()?;
        read(&resource, &body).ok_or_else(|| self.no_indicator())
    }

    /// Turn the locate indicator on or off and read it back (for up to `readback`).
    pub fn set_locate(&self, on: bool, readback: Duration) -> Result<Locate, BmcError> {
        let (resource, body) = self.locate_resource()?;
        let current = read(&resource, &body).ok_or_else(|| self.no_indicator())?;
        let patch = match current.property {
            "LocationIndicatorActive" => json!({ "LocationIndicatorActive": on }),
            _ => json!({ "IndicatorLED": if on { "Blinking" } else { "Off" } }),
        };
        let mut etag = self.client().get(&resource)?.etag;
        match self.client().patch(&resource, &patch, etag.as_deref()) {
            Ok(_) => {}
            Err(BmcError::Status { status: 412, .. }) if etag.is_some() => {
                etag = self.client().get(&resource)?.etag;
                self.client().patch(&resource, &patch, etag.as_deref())?;
            }
            Err(e) => return Err(e),
        }
        let start = Instant::now();
        loop {
            let now = self.client().get(&resource)?.body;
            let seen = read(&resource, &now).ok_or_else(|| self.no_indicator())?;
            if seen.on == on {
                tracing::info!(bmc = %self.label(), resource = %resource, property = seen.property, on, "locate indicator set");
                return Ok(seen);
            }
            if start.elapsed() >= readback {
                return Err(BmcError::NotObserved {
                    bmc: self.label().to_string(),
                    what: format!(
                        "{} {} on {resource} (still {})",
                        seen.property,
                        if on { "on" } else { "off" },
                        seen.value
                    ),
                    waited: readback,
                });
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The first of the system's chassis and the system that has an indicator, with its body.
    fn locate_resource(&self) -> Result<(String, Value), BmcError> {
        let system_path = self.system_path()?;
        let system = self.client().get(&system_path)?.body;
        if let Some(chassis) = link_list(&system, "/Links/Chassis").into_iter().next() {
            let body = self.client().get(&chassis)?.body;
            if read(&chassis, &body).is_some() {
                return Ok((chassis, body));
            }
        }
        Ok((system_path, system))
    }

    fn no_indicator(&self) -> BmcError {
        BmcError::NotSupported {
            bmc: self.label().to_string(),
            operation: "locate",
            why: "by this BMC: neither its chassis nor its system has LocationIndicatorActive or IndicatorLED".into(),
        }
    }
}

fn read(resource: &str, body: &Value) -> Option<Locate> {
    if let Some(on) = body.get("LocationIndicatorActive").and_then(Value::as_bool) {
        return Some(Locate {
            resource: resource.into(),
            property: "LocationIndicatorActive",
            on,
            value: on.to_string(),
        });
    }
    let led = body.get("IndicatorLED").and_then(Value::as_str)?;
    Some(Locate { resource: resource.into(), property: "IndicatorLED", on: led != "Off", value: led.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_property_wins_and_lit_counts_as_on() {
        let both = json!({"IndicatorLED": "Off", "LocationIndicatorActive": true});
        let l = read("/s", &both).expect("an indicator");
        assert_eq!((l.property, l.on), ("LocationIndicatorActive", true));
        let old = json!({"IndicatorLED": "Lit"});
        assert!(read("/c", &old).expect("an indicator").on);
        assert!(read("/c", &json!({"Name": "x"})).is_none());
    }
}
