//! Firmware compliance and updates against the Redfish trees recorded from real NVIDIA BMCs,
//! served over real HTTP by the recorded-BMC server, which also takes multipart pushes and runs
//! their Tasks the way NVIDIA's bmcweb does (tests/bmc_support/README.md).

mod bmc_support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bmc_support::server::{RecordedServer, TaskScript, UpdateBehaviour};
use bmc_support::{quick_policy, target};
use kiln::bmc::{AcCycle, Bmc, BmcError, RedfishBmc, TlsPolicy};
use kiln::checks::Verdict;
use kiln::firmware::apply::{apply_plan, ApplyOptions, Step, StepError, StepEvent};
use kiln::firmware::package::{stage, PackageError, StagedPackage};
use kiln::firmware::plan::{plan_node, NodePlan};
use kiln::firmware::{judge, load_builtin, parse_recipe, Compliance, Observed, Recipe, Status};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const USER: &str = "admin";
const PW: &str = "recorded-fw-pw";
const BMC_MEMBER: &str = "/redfish/v1/UpdateService/FirmwareInventory/FW_BMC_0";

fn serve(tree: &str) -> (RecordedServer, RedfishBmc) {
    let server = RecordedServer::recorded(tree, Some((USER, PW)));
    let bmc = RedfishBmc::with_policy(&target(&server.url(), USER, PW, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds");
    (server, bmc)
}

fn builtin(name: &str) -> Recipe {
    load_builtin().expect("recipes").into_iter().find(|r| r.recipe.name == name).expect("recipe").recipe
}

fn check(bmc: &RedfishBmc, recipe: &Recipe) -> Compliance {
    let versions = bmc.firmware_versions();
    judge(recipe, Observed { bmc: Ok(&versions), node: Err("not inspected in this test") })
}

/// A site recipe pinning the GH200's BMC firmware, carried by `file` (whose digest it pins).
fn site_recipe(file: &Path, sha256: &str, extra: &str) -> Recipe {
    let text = format!(
        r#"name = "site-gh200"
description = "a site's GH200 BMC pin"
tray = "node"
source = "qualified by the site"

[[components]]
id = "bmc"
name = "BMC firmware"
version = "GH200-24.05-2"
prefix = "GH200-"
source = "qualified"
package = "bmc_pkg"
match = {{ redfish = ["FW_BMC_0"] }}

[[packages]]
id = "bmc_pkg"
file = "{}"
sha256 = "{sha256}"
apply_time = "Immediate"
{extra}
"#,
        file.display()
    );
    parse_recipe(&text, Path::new("site-gh200.toml")).expect("site recipe parses")
}

/// A package file of `len` bytes and its digest.
fn package_file(dir: &Path, len: usize) -> (std::path::PathBuf, String) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let path = dir.join("nvfw_GH200_bmc.fwpkg");
    std::fs::write(&path, &bytes).expect("write package");
    (path, hex::encode(Sha256::digest(&bytes)))
}

/// Make the recorded BMC run an older BMC firmware than the recipe pins.
fn downgrade(server: &RecordedServer) {
    let mut member = server.resource(BMC_MEMBER).expect("member");
    member["Version"] = json!("GH200-24.01-1");
    server.set(BMC_MEMBER, member);
}

fn quick() -> ApplyOptions {
    ApplyOptions { task_poll: Duration::from_millis(50), power_off_wait: Duration::from_secs(2), ..Default::default() }
}

struct Prepared {
    _dir: tempfile::TempDir,
    recipe: Recipe,
    plan: NodePlan,
    staged: Vec<StagedPackage>,
    bytes: Vec<u8>,
}

/// A downgraded GH200, a site recipe, its plan and its staged package.
fn prepare(server: &RecordedServer, bmc: &RedfishBmc, extra: &str) -> Prepared {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, sha) = package_file(dir.path(), 3 << 20);
    let recipe = site_recipe(&file, &sha, extra);
    downgrade(server);
    let before = check(bmc, &recipe);
    assert_eq!(before.of("bmc").map(|e| e.status).collect::<Vec<_>>(), [Status::Older]);
    let plan = plan_node(&recipe, "node01", &before);
    let staged =
        vec![stage(recipe.package("bmc_pkg").expect("package"), dir.path(), &dir.path().join("staging"))
            .expect("staged")];
    let bytes = std::fs::read(&file).expect("read back");
    Prepared { _dir: dir, recipe, plan, staged, bytes }
}

fn run(bmc: &RedfishBmc, p: &Prepared) -> (Result<kiln::firmware::apply::Applied, StepError>, Vec<StepEvent>) {
    let mut events = Vec::new();
    let result = apply_plan(bmc, &p.plan, &p.staged, &quick(), &mut |e| events.push(e.clone()));
    (result, events)
}

#[test]
fn compliance_over_http_lists_every_recorded_gh200_member_once() {
    let (_server, bmc) = serve("gh200");
    let c = check(&bmc, &builtin("gh200-recorded"));
    let members = bmc.firmware_inventory().expect("inventory");
    assert_eq!(members.len(), 19);
    for m in &members {
        assert_eq!(c.entries.iter().filter(|e| e.place == m.id).count(), 1, "{}", m.id);
    }
    let unknown: Vec<&str> =
        c.entries.iter().filter(|e| e.status == Status::NotInRecipe).map(|e| e.place.as_str()).collect();
    assert_eq!(unknown, ["FW_CPLD_0", "HGX_FW_CPLD_0", "HGX_InfoROM_GPU_0", "HGX_InfoROM_GPU_1"]);
    assert!(c.is_compliant(), "{c:#?}");
    // Findings carry the serial of the part each member runs on, read over Redfish.
    let f = c.findings();
    let gpu = f.iter().find(|f| f.component.name.as_deref() == Some("HGX_FW_GPU_0")).expect("gpu finding");
    assert!(gpu.component.serial.is_some(), "{gpu:?}");
    assert_eq!(Verdict::of(&f), Verdict::Pass);
}

#[test]
fn compliance_over_http_lists_the_bluefield_golden_images_as_not_in_the_recipe() {
    let (_server, bmc) = serve("nvidia_dpu");
    let c = check(&bmc, &builtin("bluefield3-recorded"));
    assert_eq!(c.entries.iter().filter(|e| e.status == Status::NotInRecipe).count(), 5, "{c:#?}");
    assert!(c.entries.iter().any(|e| e.place == "golden_image_nic" && e.status == Status::NotInRecipe));
    assert!(c.is_compliant());
}

#[test]
fn a_push_runs_its_task_to_completion_and_the_recheck_is_compliant() {
    let (server, bmc) = serve("gh200");
    let p = prepare(&server, &bmc, "");
    server.on_update(UpdateBehaviour {
        script: TaskScript::Completes { polls: 4 },
        sets: vec![(BMC_MEMBER.into(), "GH200-24.05-2".into())],
    });
    let (result, events) = run(&bmc, &p);
    let applied = result.expect("update applies");
    assert_eq!(applied.tasks.len(), 1);
    assert_eq!(applied.tasks[0].1.state, kiln::bmc::TaskState::Completed);

    // What reached the BMC: one multipart POST, the whole package, the member as target.
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1);
    let u = &uploads[0];
    assert_eq!(u.file, p.bytes, "the package arrived byte for byte");
    assert_eq!(u.file_name, "nvfw_GH200_bmc.fwpkg");
    assert_eq!(u.parameters, json!({"Targets": [BMC_MEMBER], "@Redfish.OperationApplyTime": "Immediate"}));
    assert!(!u.chunked, "sent with a Content-Length, not chunked");
    assert!(u.content_length.as_deref().and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > p.bytes.len()));
    assert_eq!(server.count("POST", "/redfish/v1/UpdateService/update-multipart"), 1);
    assert!(server.task_polls()[0] >= 4, "{:?}", server.task_polls());

    // Every step reported; the Task's progress seen.
    let steps: Vec<(Step, &str)> = events.iter().map(|e| (e.step, e.state)).collect();
    for want in [(Step::Discover, "done"), (Step::Stage, "done"), (Step::Push, "done"), (Step::Task, "done")] {
        assert!(steps.contains(&want), "{want:?} missing from {steps:?}");
    }
    assert!(events.iter().any(|e| e.step == Step::Task && e.state == "progress" && e.detail.starts_with("Running")));

    let after = check(&bmc, &p.recipe);
    assert_eq!(after.of("bmc").map(|e| e.status).collect::<Vec<_>>(), [Status::UpToDate]);
    assert!(plan_node(&p.recipe, "node01", &after).is_empty(), "a rerun has nothing left to do");
}

#[test]
fn a_task_that_ends_in_exception_fails_naming_node_component_and_step() {
    let (server, bmc) = serve("gh200");
    let p = prepare(&server, &bmc, "");
    server.on_update(UpdateBehaviour {
        script: TaskScript::Fails { polls: 2, message: "signature verification failed".into() },
        sets: Vec::new(),
    });
    let (result, _) = run(&bmc, &p);
    let err = result.expect_err("the task failed");
    assert_eq!((err.node.as_str(), err.component.as_str(), err.step), ("node01", "bmc", Step::Task));
    let reason = err.reason();
    assert!(reason.starts_with("firmware: bmc: task: bmc http://"), "{reason}");
    assert!(reason.contains("(node01)"), "{reason}");
    assert!(reason.contains("ended Exception (Critical)"), "{reason}");
    assert!(reason.contains("signature verification failed"), "{reason}");
    assert_eq!(check(&bmc, &p.recipe).of("bmc").map(|e| e.status).collect::<Vec<_>>(), [Status::Older]);
}

#[test]
fn a_task_that_never_finishes_ends_at_its_deadline() {
    let (server, bmc) = serve("gh200");
    let p = prepare(&server, &bmc, "task_timeout_s = 1");
    server.on_update(UpdateBehaviour { script: TaskScript::Never, sets: Vec::new() });
    let started = Instant::now();
    let (result, _) = run(&bmc, &p);
    let err = result.expect_err("deadline");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(err.step, Step::Task);
    assert!(err.cause.contains("did not finish within 1s (last seen: Running 10%)"), "{}", err.cause);
}

#[test]
fn task_polls_that_fail_are_waited_out_until_the_task_completes() {
    let (server, bmc) = serve("gh200");
    let p = prepare(&server, &bmc, "");
    server.on_update(UpdateBehaviour {
        script: TaskScript::Completes { polls: 2 },
        sets: vec![(BMC_MEMBER.into(), "GH200-24.05-2".into())],
    });
    // More 500s than one request's retries absorb: the first poll fails as a whole.
    server.fail(Some("GET"), "/TaskService/Tasks/0", 500, "The BMC is busy applying firmware.", Some(5));
    let (result, _) = run(&bmc, &p);
    result.expect("the task completes after the BMC answers again");
}

#[test]
fn a_bmc_that_answers_500_to_the_push_fails_the_push_step_once() {
    let (server, bmc) = serve("gh200");
    let p = prepare(&server, &bmc, "");
    server.fail(Some("POST"), "/update-multipart", 500, "Update already in progress.", None);
    let (result, _) = run(&bmc, &p);
    let err = result.expect_err("push refused");
    assert_eq!(err.step, Step::Push);
    assert!(err.cause.contains("answered 500 after 1 try: Update already in progress."), "{}", err.cause);
    assert_eq!(server.count("POST", "/redfish/v1/UpdateService/update-multipart"), 1, "an upload is never retried");
}

#[test]
fn a_package_whose_checksum_differs_is_refused_before_anything_is_sent() {
    let (server, _bmc) = serve("gh200");
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _) = package_file(dir.path(), 4096);
    let recipe = site_recipe(&file, &"ab".repeat(32), "");
    let err = stage(recipe.package("bmc_pkg").expect("package"), dir.path(), &dir.path().join("staging"))
        .expect_err("refused");
    assert!(matches!(err, PackageError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(&format!("the recipe pins {}", "ab".repeat(32))), "{err}");
    assert!(server.requests().iter().all(|r| r.method == "GET"), "nothing was sent to the BMC");
}

#[test]
fn simple_update_over_http_is_refused_by_a_bmc_that_fetches_over_scp_only() {
    let (server, bmc) = serve("nvidia_dpu");
    let service = bmc.update_service().expect("update service");
    assert_eq!(service.protocols.as_deref(), Some(&["SCP".to_string()][..]));
    let err =
        bmc.simple_update(&service, "http://10.0.0.1:8080/firmware/x.bin", &[], None).expect_err("HTTP not allowed");
    assert!(matches!(err, BmcError::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("over HTTP: the BMC allows SCP"), "{err}");
    assert!(server.simple_updates().is_empty());
}

#[test]
fn locate_uses_location_indicator_active_and_falls_back_to_indicator_led() {
    let (server, bmc) = serve("gh200");
    let before = bmc.locate().expect("locate reads");
    assert_eq!(
        (before.resource.as_str(), before.property, before.on),
        ("/redfish/v1/Systems/System_0", "LocationIndicatorActive", false)
    );
    let on = bmc.set_locate(true, Duration::from_secs(2)).expect("locate on");
    assert!(on.on);
    assert_eq!(
        server.resource("/redfish/v1/Systems/System_0").expect("system")["LocationIndicatorActive"],
        json!(true)
    );
    let patch = server.requests().into_iter().find(|r| r.method == "PATCH").expect("a PATCH");
    assert!(patch.if_match.is_some(), "sent with If-Match like every PATCH");
    assert_eq!(serde_json::from_str::<Value>(&patch.body).expect("json"), json!({"LocationIndicatorActive": true}));

    // An older BMC: only IndicatorLED.
    let mut system = server.resource("/redfish/v1/Systems/System_0").expect("system");
    system.as_object_mut().expect("object").remove("LocationIndicatorActive");
    server.set("/redfish/v1/Systems/System_0", system);
    let on = bmc.set_locate(true, Duration::from_secs(2)).expect("locate on");
    assert_eq!((on.property, on.value.as_str()), ("IndicatorLED", "Blinking"));
    let off = bmc.set_locate(false, Duration::from_secs(2)).expect("locate off");
    assert_eq!((off.on, off.value.as_str()), (false, "Off"));

    let (_dpu, dpu) = serve("nvidia_dpu");
    let err = dpu.set_locate(true, Duration::from_secs(1)).expect_err("no indicator");
    assert!(err.to_string().contains("locate is not supported by this BMC"), "{err}");
}

#[test]
fn ac_power_cycle_uses_what_each_recorded_bmc_offers() {
    let (server, bmc) = serve("gh200");
    let how = bmc.ac_power_cycle(Duration::from_secs(1)).expect("cycle requested");
    assert_eq!(
        how,
        AcCycle::NvidiaAuxPower {
            target: "/redfish/v1/Chassis/BMC_0/Actions/Oem/NvidiaChassis.AuxPowerReset".into(),
            reset_type: "AuxPowerCycle".into()
        }
    );
    let post = server.requests().into_iter().find(|r| r.method == "POST").expect("a POST");
    assert_eq!(serde_json::from_str::<Value>(&post.body).expect("json"), json!({"ResetType": "AuxPowerCycle"}));

    let (dpu_server, dpu) = serve("nvidia_dpu");
    let how = dpu.ac_power_cycle(Duration::from_secs(1)).expect("cycle requested");
    assert_eq!(
        how,
        AcCycle::ChassisPowerCycle { target: "/redfish/v1/Chassis/Bluefield_BMC/Actions/Chassis.Reset".into() }
    );
    let post = dpu_server.requests().into_iter().find(|r| r.method == "POST").expect("a POST");
    assert_eq!(serde_json::from_str::<Value>(&post.body).expect("json"), json!({"ResetType": "PowerCycle"}));
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_bmc_password_appears_in_no_error_event_finding_or_log() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut seen: Vec<String> = Vec::new();
    // Process-wide, not scoped: a scoped subscriber can miss events whose
    // callsites other tests of this binary registered first on other threads.
    // No other test here installs one.
    tracing::subscriber::set_global_default(subscriber).expect("the one subscriber of this test binary");
    {
        for script in [TaskScript::Completes { polls: 2 }, TaskScript::Fails { polls: 2, message: "bad image".into() }]
        {
            let (server, bmc) = serve("gh200");
            let p = prepare(&server, &bmc, "");
            server.on_update(UpdateBehaviour { script, sets: Vec::new() });
            let (result, events) = run(&bmc, &p);
            seen.push(format!("{result:?}"));
            if let Err(e) = result {
                seen.push(e.to_string());
                seen.push(e.reason());
            }
            seen.extend(events.iter().map(|e| format!("{e:?}")));
            let c = check(&bmc, &p.recipe);
            seen.push(serde_json::to_string(&c).expect("json"));
            seen.push(serde_json::to_string(&c.findings()).expect("json"));
            seen.push(format!("{:?}", bmc.firmware_versions()));
        }
        // A wrong password: the refusal names the user, never a password.
        let server = RecordedServer::recorded("gh200", Some((USER, PW)));
        let wrong = RedfishBmc::with_policy(
            &target(&server.url(), USER, "not-the-password", TlsPolicy::SystemRoots),
            quick_policy(),
        )
        .expect("client");
        seen.push(format!("{:?}", wrong.firmware_versions()));
        seen.push(format!("{:?}", wrong.set_locate(true, Duration::from_secs(1))));
    }
    seen.push(String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PW}"));
    let all = seen.join("\n");
    assert!(all.contains("firmware task"), "the log was captured");
    for secret in [PW, basic.as_str(), "not-the-password"] {
        assert!(!all.contains(secret), "{secret:?} leaked:\n{all}");
    }
    // The failure paths were exercised.
    assert!(all.contains("ended Exception"), "{all}");
    assert!(all.contains("refused user"), "{all}");
}
