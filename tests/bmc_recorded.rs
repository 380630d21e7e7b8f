//! The Redfish client against Redfish trees recorded from real NVIDIA BMCs, served over real
//! HTTP, with injected faults (500s, slow answers, ETag conflicts, wrong password, no BMC).

mod bmc_support;

use std::time::{Duration, Instant};

use bmc_support::server::RecordedServer;
use bmc_support::{quick_policy, target};
use kiln::bmc::{Bmc, BmcError, BootTarget, PowerAction, PowerState, RedfishBmc, RetryPolicy, TlsPolicy};
use serde_json::Value;

const USER: &str = "admin";
const PW: &str = "recorded-pw";

fn gh200() -> (RecordedServer, RedfishBmc) {
    let server = RecordedServer::recorded("gh200", Some((USER, PW)));
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    (server, bmc)
}

fn fixture(tree: &str, path: &str) -> Value {
    let file = format!("{}/tests/fixtures/redfish/{tree}{path}/index.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(file).expect("fixture readable")).expect("fixture is JSON")
}

#[test]
fn gh200_firmware_inventory_lists_every_member_with_versions_and_serials() {
    let (_server, bmc) = gh200();
    let items = bmc.firmware_inventory().expect("inventory reads");
    // The recorded collection lists 20 members, HGX_FW_FPGA_0 twice; kiln lists it once.
    let collection = fixture("gh200", "/redfish/v1/UpdateService/FirmwareInventory");
    assert_eq!(collection["Members"].as_array().expect("members").len(), 20);
    assert_eq!(items.len(), 19);
    assert_eq!(items.iter().filter(|i| i.id == "HGX_FW_FPGA_0").count(), 1);

    let bmc_fw = items.iter().find(|i| i.id == "FW_BMC_0").expect("BMC firmware listed");
    assert_eq!(bmc_fw.version.as_deref(), Some("GH200-24.05-2"));
    assert_eq!(bmc_fw.updateable, Some(true));

    // GH200 pads GPU firmware versions with blanks; kiln trims them.
    let gpu = items.iter().find(|i| i.id == "HGX_FW_GPU_0").expect("GPU firmware listed");
    assert_eq!(gpu.version.as_deref(), Some("96.00.A6.00.01"));
    assert_eq!(gpu.related.as_deref(), Some("/redfish/v1/Chassis/HGX_GPU_0"));
    let gpu_serial = fixture("gh200", "/redfish/v1/Chassis/HGX_GPU_0")["SerialNumber"].as_str().map(str::to_string);
    assert!(gpu_serial.is_some());
    assert_eq!(gpu.serial, gpu_serial);

    let uefi = items.iter().find(|i| i.id == "UEFI").expect("UEFI listed");
    assert_eq!(uefi.updateable, Some(false));
    assert_eq!(uefi.serial, None);

    let c = gpu.inventory_component();
    assert_eq!((c.kind, c.name.as_str(), c.version.as_str()), ("firmware", "HGX_FW_GPU_0", "96.00.A6.00.01"));
    assert!(items.iter().all(|i| i.problem.is_none()));
}

#[test]
fn gh200_identity_picks_the_host_system_and_its_chassis_serial() {
    let (_server, bmc) = gh200();
    let id = bmc.identity().expect("identity reads");
    // Two systems are listed; the BMC's manager manages only System_0.
    assert_eq!(id.system.as_deref(), Some("/redfish/v1/Systems/System_0"));
    assert_eq!(id.system_serial, None, "the GH200 host system has no serial of its own");
    assert_eq!(id.chassis.as_deref(), Some("/redfish/v1/Chassis/BMC_0"));
    assert_eq!(id.chassis_serial.as_deref(), Some("1580624650610"));
    assert_eq!(id.manufacturer.as_deref(), Some("NVIDIA"));
    assert_eq!(id.model.as_deref(), Some("P3809"));
    assert_eq!(id.bmc_firmware.as_deref(), Some("GH200-24.05-2"));
}

#[test]
fn configured_system_is_used_as_given() {
    let server = RecordedServer::recorded("gh200", Some((USER, PW)));
    let mut t = target(&server.url(), USER, PW, TlsPolicy::SystemRoots);
    t.system_path = Some("/redfish/v1/Systems/HGX_Baseboard_0".into());
    let bmc = RedfishBmc::with_policy(&t, quick_policy()).expect("client builds");
    let id = bmc.identity().expect("identity reads");
    assert_eq!(id.system_serial.as_deref(), Some("1580924760074"));
    // Its manager is not in the recorded subset: the answer says so instead of failing.
    assert_eq!(id.bmc_firmware, None);
    assert_eq!(id.problems.len(), 1, "{:?}", id.problems);
    assert!(id.problems[0].contains("/redfish/v1/Managers/HGX_BMC_0 answered 404"), "{:?}", id.problems);
}

#[test]
fn dpu_identity_and_firmware() {
    let server = RecordedServer::recorded("nvidia_dpu", None);
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    let id = bmc.identity().expect("identity reads");
    assert_eq!(id.system.as_deref(), Some("/redfish/v1/Systems/Bluefield"));
    // Recorded with trailing blanks.
    assert_eq!(id.system_serial.as_deref(), Some("MT2328XZ185R"));
    let items = bmc.firmware_inventory().expect("inventory reads");
    assert_eq!(items.len(), 13);
    let nic = items.iter().find(|i| i.id == "DPU_NIC").expect("NIC firmware listed");
    assert_eq!(nic.version.as_deref(), Some("32.38.1002"));
}

#[test]
fn dpu_without_virtual_media_says_so_naming_the_bmc() {
    let server = RecordedServer::recorded("nvidia_dpu", None);
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    let err = bmc.insert_media("http://10.0.0.1/boot.iso").expect_err("the DPU BMC has no virtual media");
    assert!(matches!(err, BmcError::NotSupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&server.url()) && msg.contains("(node01)") && msg.contains("VirtualMedia"), "{msg}");
}

#[test]
fn reset_posts_the_allowed_reset_type_to_the_action_target() {
    let (server, bmc) = gh200();
    assert_eq!(bmc.power_state().expect("power state reads"), PowerState::On);
    bmc.power(PowerAction::Reset).expect("reset accepted");
    let posts: Vec<_> = server.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset");
    let body: Value = serde_json::from_str(&posts[0].body).expect("JSON body");
    assert_eq!(body["ResetType"], "ForceRestart");
    // The allowed values came from the system's ActionInfo resource.
    assert_eq!(server.count("GET", "/redfish/v1/Systems/System_0/ResetActionInfo"), 1);
}

#[test]
fn boot_override_goes_to_the_settings_object_with_if_match() {
    let (server, bmc) = gh200();
    let settings = "/redfish/v1/Systems/System_0/Settings";
    let etag_before = server.etag_of(settings).expect("settings resource exists");
    bmc.set_boot_once(BootTarget::Pxe).expect("boot override accepted");
    let patch = server.requests().into_iter().find(|r| r.method == "PATCH").expect("a PATCH was sent");
    assert_eq!(patch.path, settings);
    assert_eq!(patch.if_match.as_deref(), Some(etag_before.as_str()));
    let now = server.resource(settings).expect("settings readable");
    assert_eq!(now["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(now["Boot"]["BootSourceOverrideEnabled"], "Once");
}

#[test]
fn etag_conflict_is_read_again_and_retried_once() {
    let (server, bmc) = gh200();
    server.fail(Some("PATCH"), "/Settings", 412, "the ETag does not match", Some(1));
    bmc.set_boot_once(BootTarget::Cd).expect("second PATCH succeeds");
    assert_eq!(server.count("PATCH", "/redfish/v1/Systems/System_0/Settings"), 2);
    let now = server.resource("/redfish/v1/Systems/System_0/Settings").expect("settings readable");
    assert_eq!(now["Boot"]["BootSourceOverrideTarget"], "Cd");
}

#[test]
fn boot_target_the_system_does_not_allow_is_refused_before_sending() {
    let server = RecordedServer::recorded("nvidia_dpu", None);
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    // The DPU allows None, Pxe and UEFI targets, but no CD.
    let err = bmc.set_boot_once(BootTarget::Cd).expect_err("Cd is not allowed on the DPU");
    assert!(matches!(err, BmcError::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("allows None, Pxe, UefiHttp"), "{err}");
    assert_eq!(server.requests().iter().filter(|r| r.method == "PATCH").count(), 0);
    bmc.set_boot_once(BootTarget::Pxe).expect("Pxe is allowed");
    let now = server.resource("/redfish/v1/Systems/Bluefield/Settings").expect("settings readable");
    assert_eq!(now["Boot"]["BootSourceOverrideTarget"], "Pxe");
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let (server, bmc) = gh200();
    bmc.system_path().expect("discovery");
    server.fail(Some("GET"), "/redfish/v1/Systems/System_0", 500, "busy", Some(2));
    assert_eq!(bmc.power_state().expect("third try succeeds"), PowerState::On);
    assert_eq!(server.count("GET", "/redfish/v1/Systems/System_0"), 3);
}

#[test]
fn persistent_500_is_reported_with_the_bmc_the_action_and_the_message() {
    let (server, bmc) = gh200();
    server.fail(Some("POST"), "ComputerSystem.Reset", 500, "The BMC is busy updating firmware.", None);
    let err = bmc.power(PowerAction::ForceOff).expect_err("always 500");
    let expected = format!(
        "bmc {} (node01): POST /redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset answered 500 after 4 tries: \
         The BMC is busy updating firmware.",
        server.url()
    );
    assert_eq!(err.to_string(), expected);
    assert_eq!(server.count("POST", "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset"), 4);
}

#[test]
fn slow_answers_time_out_and_are_reported_after_retries() {
    let (server, _) = gh200();
    let policy = RetryPolicy {
        tries: 3,
        first_delay: Duration::from_millis(20),
        request_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(10),
    };
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), policy)
        .expect("client builds");
    server.delay(None, "/redfish/v1/Systems", Duration::from_secs(2), None);
    let started = Instant::now();
    let err = bmc.power_state().expect_err("every answer is too slow");
    assert!(started.elapsed() < Duration::from_secs(3), "bounded: {:?}", started.elapsed());
    assert!(matches!(err, BmcError::Transport { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("bmc {} (node01): GET /redfish/v1/Systems", server.url())), "{msg}");
    assert!(msg.contains("after 3 tries"), "{msg}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.to_lowercase().contains("timeout"), "{chain}");
}

#[test]
fn deadline_bounds_the_whole_request() {
    let (server, _) = gh200();
    let policy = RetryPolicy {
        tries: 10,
        first_delay: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        deadline: Duration::from_millis(800),
    };
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), policy)
        .expect("client builds");
    server.fail(None, "/redfish/v1", 503, "service unavailable", None);
    let started = Instant::now();
    let err = bmc.power_state().expect_err("always 503");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(err.to_string().contains("deadline of 0.8s reached"), "{err}");
}

#[test]
fn wrong_password_is_a_clear_401_without_the_password() {
    let server = RecordedServer::recorded("gh200", Some((USER, PW)));
    let bmc = RedfishBmc::with_policy(
        &target(&server.url(), USER, "not-the-password", TlsPolicy::SystemRoots),
        quick_policy(),
    )
    .expect("client builds");
    let err = bmc.power_state().expect_err("401");
    assert!(matches!(err, BmcError::Unauthorized { status: 401, .. }), "{err:?}");
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("refused user \"admin\" (401)"), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    // A refused password is not retried: it would only lock the account.
    assert_eq!(server.requests().iter().filter(|r| r.path == "/redfish/v1/Systems").count(), 1);
}

#[test]
fn unreachable_bmc_is_named_after_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let bmc = RedfishBmc::with_policy(&target(&url, USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    let err = bmc.power_state().expect_err("nothing listens there");
    let msg = err.to_string();
    assert_eq!(msg, format!("bmc {url} (node01): GET /redfish/v1 failed after 4 tries"));
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.to_lowercase().contains("refused"), "{chain}");
}
