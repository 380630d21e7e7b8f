//! A real firmware update against the sushy-tools emulator: compliance before, `SimpleUpdate`
//! with an `ImageURI` on kiln's own package server, the Task, the host reset, and compliance
//! after, every version read back from the emulator itself.
//!
//! Emulator facts these tests rely on (sushy-tools 2.2): only its libvirt driver keeps firmware
//! versions, so `SimpleUpdate` works there (BIOS targets only; `BiosVersion` 1.0.0 becomes
//! 1.1.0: it raises the second number, whatever the image) and answers 204 with
//! `Location: /redfish/v1/TaskService/Tasks/42`, a Task that reads `Completed`. It does not
//! fetch the `ImageURI`; the test fetches it instead, to prove what a BMC would get. On the fake
//! driver (the lab's) it answers 500.

mod bmc_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bmc_support::sushy::{Sushy, PASSWORD, USER};
use bmc_support::{quick_policy, target};
use kiln::bmc::{RedfishBmc, TlsPolicy};
use kiln::checks::{Outcome, Verdict};
use kiln::firmware::apply::{apply_plan, ApplyOptions, Step};
use kiln::firmware::package::{stage, PackageServer};
use kiln::firmware::plan::plan_node;
use kiln::firmware::{judge, parse_recipe, Activation, Compliance, Observed, Recipe, Status};
use sha2::{Digest, Sha256};

fn client(sushy: &Sushy) -> RedfishBmc {
    RedfishBmc::with_policy(&target(&sushy.url, USER, PASSWORD, TlsPolicy::SystemRoots), quick_policy())
        .expect("client builds")
}

/// A recipe pinning the emulated BIOS at 1.1.0, carried by `file` through SimpleUpdate.
fn bios_recipe(file: &Path, sha256: &str) -> Recipe {
    let text = format!(
        r#"name = "lab-bios"
description = "the emulated node's BIOS"
tray = "node"
source = "sushy-tools 2.2 raises BiosVersion 1.0.0 to 1.1.0"

[[components]]
id = "bios"
name = "system BIOS"
version = "1.1.0"
source = "what the emulator's SimpleUpdate installs"
activation = "host-reset"
package = "bios"
match = {{ redfish_property = "BiosVersion" }}

[[packages]]
id = "bios"
file = "{}"
sha256 = "{sha256}"
method = "simple-update"
task_timeout_s = 30
"#,
        file.display()
    );
    parse_recipe(&text, Path::new("lab-bios.toml")).expect("recipe parses")
}

fn check(bmc: &RedfishBmc, recipe: &Recipe) -> Compliance {
    let v = bmc.firmware_versions();
    judge(recipe, Observed { bmc: Ok(&v), node: Err("not inspected in this test") })
}

fn package(dir: &Path) -> (std::path::PathBuf, Vec<u8>, String) {
    let bytes: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let path = dir.join("bios-1.1.0.bin");
    std::fs::write(&path, &bytes).expect("write");
    let sha = hex::encode(Sha256::digest(&bytes));
    (path, bytes, sha)
}

#[test]
fn simple_update_brings_the_bios_to_the_recipe_and_compliance_follows() {
    let Some(sushy) = Sushy::start_libvirt_or_skip() else { return };
    let bmc = client(&sushy);
    let system = sushy.system_path();
    assert_eq!(sushy.get(&system)["BiosVersion"], "1.0.0", "the emulator starts at 1.0.0");

    let dir = tempfile::tempdir().expect("tempdir");
    let (file, bytes, sha) = package(dir.path());
    let recipe = bios_recipe(&file, &sha);
    let before = check(&bmc, &recipe);
    assert_eq!(
        before.of("bios").map(|e| (e.status, e.reported.as_deref())).collect::<Vec<_>>(),
        [(Status::Older, Some("1.0.0"))]
    );
    // The emulator has no firmware inventory (404): noted, not failed.
    assert!(before.entries.iter().any(|e| e.status == Status::NoInventory), "{before:#?}");
    assert_eq!(Verdict::of(&before.findings()), Verdict::Fail);

    let plan = plan_node(&recipe, "node01", &before);
    assert_eq!(plan.updates.len(), 1);
    assert_eq!(plan.updates[0].targets, std::slice::from_ref(&system), "the system is the BIOS's target");
    assert_eq!(plan.activation, Activation::HostReset);

    let staging = dir.path().join("staging");
    let staged = stage(recipe.package("bios").expect("package"), dir.path(), &staging).expect("staged");
    let server = PackageServer::start(&staging, "127.0.0.1:0".parse::<SocketAddr>().expect("addr")).expect("serves");
    let base = format!("http://{}", server.addr());
    let opts =
        ApplyOptions { task_poll: Duration::from_millis(100), image_base: Some(base.clone()), ..Default::default() };
    let mut events = Vec::new();
    let applied = apply_plan(&bmc, &plan, std::slice::from_ref(&staged), &opts, &mut |e| events.push(e.clone()))
        .expect("the update applies");
    assert_eq!(applied.tasks[0].1.path, "/redfish/v1/TaskService/Tasks/42");

    // The emulator itself says so, and so does the re-check.
    assert_eq!(sushy.get(&system)["BiosVersion"], "1.1.0");
    let after = check(&bmc, &recipe);
    assert_eq!(after.of("bios").map(|e| e.status).collect::<Vec<_>>(), [Status::UpToDate]);
    let findings = after.findings();
    assert_eq!(findings.iter().find(|f| f.check == "firmware.bios").map(|f| f.outcome), Some(Outcome::Pass));
    assert!(after.is_compliant());

    // What the emulator was asked, in order: the update, then the host reset.
    let posts: Vec<String> = sushy
        .requests()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .map(|(_, p, status)| format!("{p} {status}"))
        .collect();
    assert_eq!(
        posts,
        [
            "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate 204".to_string(),
            format!("{system}/Actions/ComputerSystem.Reset 204"),
        ]
    );
    // The ImageURI it was given serves the checked package byte for byte.
    let uri = events.iter().find(|e| e.step == Step::SimpleUpdate).map(|e| e.detail.clone()).expect("uri");
    assert!(uri.starts_with(&format!("{base}/firmware/")), "{uri}");
    let mut got = Vec::new();
    let mut response = ureq::get(&uri).call().expect("the package server answers");
    std::io::Read::read_to_end(&mut response.body_mut().as_reader(), &mut got).expect("body");
    assert_eq!(got, bytes);
}

#[test]
fn an_emulator_that_answers_500_to_simple_update_fails_that_step() {
    // The fake driver keeps no versions: its SimpleUpdate answers 500.
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let bmc = client(&sushy);
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, _, sha) = package(dir.path());
    let mut recipe = bios_recipe(&file, &sha);
    recipe.components[0].version = "9.9.0".into();
    let v = bmc.firmware_versions();
    // The fake driver reports no BiosVersion at all: the component is missing, so the plan is
    // built by hand for the system, as an explicit target would make it.
    let c = judge(&recipe, Observed { bmc: Ok(&v), node: Err("n/a") });
    assert_eq!(c.of("bios").map(|e| e.status).collect::<Vec<_>>(), [Status::Missing]);
    let mut plan = plan_node(&recipe, "node01", &c);
    assert!(plan.updates.is_empty() && plan.blocked.len() == 1, "{plan:?}");
    plan.updates.push(kiln::firmware::plan::PlannedUpdate {
        package: "bios".into(),
        method: kiln::firmware::Method::SimpleUpdate,
        components: vec!["bios".into()],
        targets: vec![sushy.system_path()],
        apply_time: None,
        delay_s: 0,
        one_at_a_time: kiln::firmware::recipe::Exclusive::Bmc,
        task_timeout_s: 10,
    });
    let staging = dir.path().join("staging");
    let staged = stage(recipe.package("bios").expect("package"), dir.path(), &staging).expect("staged");
    let opts = ApplyOptions { image_base: Some("http://127.0.0.1:9".into()), ..Default::default() };
    let err = apply_plan(&bmc, &plan, &[staged], &opts, &mut |_| {}).expect_err("500");
    assert_eq!((err.component.as_str(), err.step), ("bios", Step::SimpleUpdate));
    assert!(err.reason().starts_with("firmware: bios: simple-update: bmc http://127.0.0.1:"), "{}", err.reason());
    assert!(err.cause.contains("(node01)"), "{}", err.cause);
    assert!(err.cause.contains("answered 500"), "{}", err.cause);
    assert!(err.cause.contains("Failed fetching BIOS information"), "{}", err.cause);
}
