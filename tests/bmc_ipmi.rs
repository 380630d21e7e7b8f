//! The IPMI fallback against a real `ipmi_sim` over lanplus: each change is checked on the
//! simulated host (the chassis-control script's state), not only in ipmitool's answer.

mod bmc_support;

use bmc_support::ipmisim::{IpmiSim, PASSWORD, USER};
use bmc_support::target;
use kiln::bmc::{Bmc, BmcError, BootTarget, IpmiAddress, IpmiBmc, PowerAction, PowerState, TlsPolicy};

fn client(sim: &IpmiSim, password: &str) -> IpmiBmc {
    let mut t = target("https://127.0.0.1:1", USER, password, TlsPolicy::SystemRoots);
    t.ipmi = Some(IpmiAddress { host: "127.0.0.1".into(), port: sim.port });
    IpmiBmc::from_target(&t).expect("target has an IPMI address")
}

#[test]
fn power_status_on_off_reset_over_ipmi() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let bmc = client(&sim, PASSWORD);
    assert_eq!(bmc.power_state().expect("status reads"), PowerState::Off);

    bmc.power(PowerAction::On).expect("power on");
    assert_eq!(sim.host_power(), "1");
    assert_eq!(bmc.power_state().expect("status reads"), PowerState::On);

    bmc.power(PowerAction::ForceOff).expect("power off");
    assert_eq!(sim.host_power(), "0");
    assert_eq!(bmc.power_state().expect("status reads"), PowerState::Off);

    bmc.power(PowerAction::Reset).expect("reset");
    bmc.power(PowerAction::Off).expect("soft off");
    let calls = sim.calls();
    assert!(calls.contains("set reset 1"), "{calls}");
    assert!(calls.contains("set shutdown 1"), "{calls}");

    let err = bmc.power(PowerAction::GracefulRestart).expect_err("no graceful restart in IPMI");
    assert!(err.to_string().contains("not supported over IPMI"), "{err}");
}

#[test]
fn boot_device_over_ipmi() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let bmc = client(&sim, PASSWORD);
    // ipmi_sim's chassis control names the hard-disk selector "default"
    // (boot from the default hard drive); it has no "disk" word.
    for (target, dev) in [(BootTarget::Pxe, "pxe"), (BootTarget::Cd, "cdrom"), (BootTarget::Hdd, "default")] {
        bmc.set_boot_once(target).expect("boot device set");
        assert_eq!(sim.host_boot(), dev);
    }
}

#[test]
fn wrong_password_over_ipmi_is_clear() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let bmc = client(&sim, "not-the-ipmi-pw");
    let err = bmc.power_state().expect_err("refused");
    assert!(matches!(err, BmcError::IpmiFailed { .. }), "{err:?}");
    let msg = format!("{err} {err:?}");
    assert!(msg.contains(&format!("ipmi 127.0.0.1:{} (node01)", sim.port)), "{msg}");
    assert!(msg.contains("chassis power status"), "{msg}");
    assert!(!msg.contains("not-the-ipmi-pw"), "{msg}");
}

#[test]
fn operations_ipmi_cannot_do_say_so() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let bmc = client(&sim, PASSWORD);
    for err in [
        bmc.insert_media("http://x/y.iso").expect_err("no media"),
        bmc.eject_media().expect_err("no media"),
        bmc.firmware_inventory().expect_err("no inventory"),
    ] {
        assert!(matches!(err, BmcError::NotSupported { .. }), "{err:?}");
        assert!(err.to_string().contains("not supported over IPMI"), "{err}");
    }
}
