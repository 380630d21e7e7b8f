//! The Redfish client against the sushy-tools emulator (a real Redfish service, fake driver):
//! every change is read back from the emulator itself, not taken from kiln's own answer.
//!
//! Emulator quirks these tests allow for: power changes land 1 to 11 s after the
//! request (so they poll with a deadline), a "Once" boot override reads back as
//! "Continuous", and FirmwareInventory answers 404.

mod bmc_support;

use std::time::{Duration, Instant};

use bmc_support::server::{Options, RecordedServer};
use bmc_support::sushy::{Sushy, PASSWORD, USER};
use bmc_support::{quick_policy, target};
use kiln::bmc::{wait_for_power, Bmc, BmcError, BootTarget, PowerAction, PowerState, RedfishBmc, TlsPolicy};

fn client(sushy: &Sushy) -> RedfishBmc {
    RedfishBmc::with_policy(&target(&sushy.url, USER, PASSWORD, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds")
}

/// Poll the emulator (not kiln) until the system's PowerState is `want`.
fn observe_power(sushy: &Sushy, want: &str, limit: Duration) -> Vec<String> {
    let system = sushy.system_path();
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let now = sushy.get(&system)["PowerState"].as_str().unwrap_or("?").to_string();
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now == want {
            return seen;
        }
        assert!(start.elapsed() < limit, "power never became {want} within {limit:?}; seen {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn power_off_on_and_reset_are_observed_on_the_emulator() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc = client(&sushy);
    let limit = Duration::from_secs(20);

    bmc.power(PowerAction::On).expect("power on accepted");
    observe_power(&sushy, "On", limit);
    assert_eq!(bmc.power_state().expect("kiln reads power"), PowerState::On);

    bmc.power(PowerAction::ForceOff).expect("force off accepted");
    observe_power(&sushy, "Off", limit);
    assert_eq!(bmc.power_state().expect("kiln reads power"), PowerState::Off);

    // kiln's own wait helper, checked against the emulator afterwards.
    bmc.power(PowerAction::On).expect("power on accepted");
    wait_for_power(&bmc, &PowerState::On, limit, Duration::from_millis(250)).expect("kiln sees it come on");
    assert_eq!(sushy.get(&sushy.system_path())["PowerState"], "On");

    bmc.power(PowerAction::Off).expect("graceful off accepted");
    observe_power(&sushy, "Off", limit);

    // A reset of a switched-off host brings it up on the fake driver: the
    // Off -> On transition is the reset's doing, observed on the emulator.
    bmc.power(PowerAction::Reset).expect("reset accepted");
    let seen = observe_power(&sushy, "On", limit);
    assert_eq!(seen.first().map(String::as_str), Some("Off"), "{seen:?}");
}

#[test]
fn boot_override_reads_back_from_the_emulator() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc = client(&sushy);
    let system = sushy.system_path();

    bmc.set_boot_once(BootTarget::Pxe).expect("boot override accepted");
    let boot = &sushy.get(&system)["Boot"];
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    // Emulator quirk: "Once" is stored but reads back as "Continuous".
    let enabled = boot["BootSourceOverrideEnabled"].as_str().unwrap_or("");
    assert!(enabled == "Once" || enabled == "Continuous", "{enabled}");

    bmc.set_boot_once(BootTarget::Cd).expect("boot override accepted");
    assert_eq!(sushy.get(&system)["Boot"]["BootSourceOverrideTarget"], "Cd");
    assert_eq!(bmc.boot_override().expect("kiln reads it").target.as_deref(), Some("Cd"));
}

#[test]
fn virtual_media_insert_then_eject_read_back_from_the_emulator() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    // The emulator downloads the image it is given, so serve a small one.
    let images = RecordedServer::start(Options::default());
    images.add_file("/kiln-test.iso", b"CD001 kiln test image\n".repeat(64));
    let image_url = format!("{}/kiln-test.iso", images.url());
    let bmc = client(&sushy);

    bmc.insert_media(&image_url).expect("insert accepted");
    let (slot, _) = bmc.media_slot().expect("slot found");
    let on_emulator = sushy.get(&slot.path);
    assert_eq!(on_emulator["Inserted"], true);
    assert_eq!(on_emulator["Image"], image_url.as_str());
    assert!(images.count("GET", "/kiln-test.iso") >= 1, "the emulator fetched the image");

    bmc.eject_media().expect("eject accepted");
    let on_emulator = sushy.get(&slot.path);
    assert_eq!(on_emulator["Inserted"], false);
    assert_eq!(on_emulator["Image"].as_str().unwrap_or(""), "");
}

#[test]
fn unreachable_image_is_reported_with_the_emulators_message() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc = client(&sushy);
    let err = bmc.insert_media("http://127.0.0.1:9/missing.iso").expect_err("the emulator cannot fetch it");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("bmc {} (node01): POST ", sushy.url)), "{msg}");
    assert!(msg.contains("InsertMedia answered 500 after 4 tries: Failed fetching image"), "{msg}");
}

#[test]
fn wrong_password_is_refused_clearly() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc =
        RedfishBmc::with_policy(&target(&sushy.url, USER, "wrong-pw-123", TlsPolicy::SystemRoots), quick_policy())
            .expect("client builds");
    let err = bmc.power_state().expect_err("401");
    assert!(matches!(err, BmcError::Unauthorized { status: 401, .. }), "{err:?}");
    let msg = format!("{err} / {err:?}");
    assert!(msg.contains("refused user \"admin\" (401): Incorrect username or password"), "{msg}");
    assert!(!msg.contains("wrong-pw-123"), "{msg}");
}

#[test]
fn stopped_emulator_is_named_after_retries() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let url = sushy.url.clone();
    drop(sushy);
    let bmc = RedfishBmc::with_policy(&target(&url, USER, PASSWORD, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    let err = bmc.power_state().expect_err("nothing answers");
    assert_eq!(err.to_string(), format!("bmc {url} (node01): GET /redfish/v1 failed after 4 tries"));
}

#[test]
fn identity_matches_the_emulator_and_firmware_404_is_an_error() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc = client(&sushy);
    let id = bmc.identity().expect("identity reads");
    let system = sushy.get(&sushy.system_path());
    assert_eq!(id.manufacturer.as_deref(), system["Manufacturer"].as_str());
    let chassis_path = system["Links"]["Chassis"][0]["@odata.id"].as_str().expect("chassis link");
    assert_eq!(id.chassis.as_deref(), Some(chassis_path));
    assert_eq!(id.chassis_serial.as_deref(), sushy.get(chassis_path)["SerialNumber"].as_str());
    assert!(id.chassis_serial.is_some());

    // Emulator quirk: no firmware inventory. It must be an error, never an empty list.
    let err = bmc.firmware_inventory().expect_err("404 on the emulator");
    let msg = err.to_string();
    assert!(msg.contains(&sushy.url) && (msg.contains("404") || msg.contains("not supported")), "{msg}");
}
