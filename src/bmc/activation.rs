//! Activating new firmware: a host reset, or an AC power cycle of the tray through the BMC.
//!
//! What the recorded BMCs offer for an AC cycle, tried in this order:
//! 1. NVIDIA's OEM action `#NvidiaChassis.AuxPowerReset` on the system's chassis (GH200
//!    `Chassis/BMC_0`, allowable `AuxPowerCycle`; the DGX GB200 user guide's "Virtual A/C
//!    Cycle" sends `AuxPowerCycleForce` to the same action): power leaves the standby rail too,
//!    which CPLD and ERoT updates need.
//! 2. `#Chassis.Reset` with `PowerCycle` (GH200 `Chassis/BMC_0` and BlueField `Chassis/Card1`
//!    allow only that value).
//! 3. Neither (the sushy-tools emulator's chassis has no actions): `ForceOff`, wait for off,
//!    `On` on the system. That is not a true AC cycle and is reported as what it was.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::redfish::{link_list, text};
use super::wait::wait_for_power;
use super::{Bmc, BmcError, PowerAction, PowerState, RedfishBmc};

/// How an AC power cycle was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum AcCycle {
    /// `NvidiaChassis.AuxPowerReset` with this `ResetType`.
    NvidiaAuxPower { target: String, reset_type: String },
    /// `Chassis.Reset` `PowerCycle`.
    ChassisPowerCycle { target: String },
    /// System `ForceOff`, then `On`: the standby rail stayed up.
    OffOn,
}

impl AcCycle {
    pub fn describe(&self) -> String {
        match self {
            AcCycle::NvidiaAuxPower { target, reset_type } => format!("{reset_type} via {target}"),
            AcCycle::ChassisPowerCycle { target } => format!("PowerCycle via {target}"),
            AcCycle::OffOn => {
                "ForceOff then On (the BMC offers no chassis power cycle; standby power stayed on)".into()
            }
        }
    }
}

/// `ResetType`s of NVIDIA's AuxPowerReset, preferred first.
const AUX_POWER: [&str; 2] = ["AuxPowerCycle", "AuxPowerCycleForce"];

impl RedfishBmc {
    /// Reset the host (`ForceRestart`, or `PowerCycle` where that is all the system allows).
    pub fn host_reset(&self) -> Result<(), BmcError> {
        self.power(PowerAction::Reset)
    }

    /// Power-cycle the tray as close to pulling its cords as the BMC allows. `off_wait` bounds
    /// the wait for power off in the `ForceOff`/`On` fallback.
    pub fn ac_power_cycle(&self, off_wait: Duration) -> Result<AcCycle, BmcError> {
        let system_path = self.system_path()?;
        let system = self.client().get(&system_path)?.body;
        if let Some(chassis_path) = link_list(&system, "/Links/Chassis").into_iter().next() {
            let chassis = self.client().get(&chassis_path)?.body;
            if let Some(action) = chassis.pointer("/Actions/Oem/#NvidiaChassis.AuxPowerReset") {
                if let Some(target) = text(action, "target") {
                    let allowed = self.allowed_values(action);
                    let reset_type = match &allowed {
                        Some(list) => AUX_POWER.iter().find(|w| list.iter().any(|a| a == *w)).copied(),
                        None => Some(AUX_POWER[0]),
                    };
                    if let Some(reset_type) = reset_type {
                        self.client().post(&target, &json!({ "ResetType": reset_type }))?;
                        tracing::info!(bmc = %self.label(), target, reset_type, "AC power cycle requested");
                        return Ok(AcCycle::NvidiaAuxPower { target, reset_type: reset_type.into() });
                    }
                }
            }
            if let Some(action) = chassis.pointer("/Actions/#Chassis.Reset") {
                if let Some(target) = text(action, "target") {
                    let allowed = self.allowed_values(action);
                    if allowed.as_ref().is_none_or(|list| list.iter().any(|a| a == "PowerCycle")) {
                        self.client().post(&target, &json!({ "ResetType": "PowerCycle" }))?;
                        tracing::info!(bmc = %self.label(), target, "chassis power cycle requested");
                        return Ok(AcCycle::ChassisPowerCycle { target });
                    }
                }
            }
        }
        tracing::warn!(bmc = %self.label(), "no chassis power cycle offered: ForceOff, then On");
        self.power(PowerAction::ForceOff)?;
        wait_for_power(self, &PowerState::Off, off_wait, Duration::from_millis(500))?;
        self.power(PowerAction::On)?;
        Ok(AcCycle::OffOn)
    }

    /// `ResetType` values an action allows, inline or in its ActionInfo; `None` when it does
    /// not say (or the ActionInfo cannot be read: the BMC then judges the request).
    fn allowed_values(&self, action: &Value) -> Option<Vec<String>> {
        if let Some(list) = action.get("ResetType@Redfish.AllowableValues").and_then(Value::as_array) {
            return Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect());
        }
        let info = self.client().get(action.get("@Redfish.ActionInfo").and_then(Value::as_str)?).ok()?.body;
        let params = info.get("Parameters").and_then(Value::as_array)?;
        let reset = params.iter().find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?;
        Some(reset.get("AllowableValues")?.as_array()?.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }
}
