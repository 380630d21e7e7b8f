//! `kiln rack burnin --via slurm` against a real slurmctld with one slurmd per lab node, each in the
//! namespaces of its node's sshd (so a job sees the node's kiln and snapshot tree as SSH does).
//! Needs root, the lab and Debian's slurm-wlm and munge; otherwise prints SKIPPED (and fails under
//! KILN_REQUIRE_PEERS=1).

mod fixture_support;
mod slurm_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::inventory::Inventory;
use kiln::lifecycle::{LifecycleState, RunKind};
use serde_json::Value;
use slurm_support::{SlurmCluster, SlurmExtras, SlurmNodeSpec};
use xtask::lab::{self, LabConfig};

fn skip_reason() -> Option<String> {
    if !lab::is_root() {
        return Some("not root: the lab and slurmd need network namespaces".into());
    }
    if let Some(p) = slurm_support::missing_program() {
        return Some(format!("{p} missing (apt-get install slurm-wlm munge)"));
    }
    ["/usr/bin/sbatch", "/usr/bin/squeue", "/usr/bin/scancel"]
        .into_iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} missing (apt-get install slurm-client)"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the test needs to run kiln and Slurm's clients against the cluster.
struct Rig<'a> {
    cluster: &'a SlurmCluster,
    manifest: PathBuf,
    db: PathBuf,
    /// A directory first on PATH whose `sbatch` logs every call before it runs the real one.
    wrappers: PathBuf,
    sbatch_log: PathBuf,
    rack: String,
}

impl Rig<'_> {
    fn kiln_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        self.cluster.configure(&mut cmd);
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.wrappers.display()));
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    fn burnin_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["rack", "burnin", "--via", "slurm", "--json", "--poll", "1", "--rack"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(self.manifest.display().to_string());
        args.extend(["--db".to_string(), self.db.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn run(&self, extra: &[&str]) -> (i32, Value, String) {
        let args = self.burnin_args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.kiln_command(&refs).output().expect("run kiln");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, format!("{stdout}\n{stderr}"))
    }

    fn spawn(&self, extra: &[&str], env: &[(&str, &Path)]) -> Child {
        let args = self.burnin_args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.kiln_command(&refs);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start kiln")
    }

    fn slurm(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(program);
        self.cluster.configure(&mut cmd);
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A job that keeps `node` busy, so that kiln's job for it waits (exclusive).
    fn hold(&self, node: &str) -> String {
        let id = self.slurm(
            "sbatch",
            &["--parsable", "--exclusive", "--nodelist", node, "-J", "hold", "-o", "/dev/null", "--wrap", "sleep 300"],
        );
        let id = id.trim().to_string();
        wait_for(Duration::from_secs(30), "the holding job to run", || self.job_state(&id) == "RUNNING");
        id
    }

    fn job_state(&self, id: &str) -> String {
        self.slurm("squeue", &["-h", "--states=all", "-j", id, "-o", "%T"]).trim().to_string()
    }

    /// The id of the job called `name` that has not ended, once there is one.
    fn job_named(&self, name: &str, state: &str) -> String {
        let mut id = String::new();
        wait_for(Duration::from_secs(60), &format!("job {name} {state}"), || {
            let out = self.slurm("squeue", &["-h", "-n", name, "-o", "%i|%T"]);
            match out.lines().next().and_then(|l| l.split_once('|')) {
                Some((i, s)) if s == state => {
                    id = i.to_string();
                    true
                }
                _ => false,
            }
        });
        id
    }

    /// How many times kiln ran sbatch for `node`.
    fn sbatch_calls(&self, node: &str) -> usize {
        let pinned = format!("--nodelist={node} ");
        std::fs::read_to_string(&self.sbatch_log)
            .map(|t| t.lines().filter(|l| l.contains(&pinned)).count())
            .unwrap_or(0)
    }

    /// The jobs of `nodes` the inventory holds open.
    fn open_jobs(&self, nodes: &[&str]) -> usize {
        Inventory::open_read_only(&self.db)
            .and_then(|inv| inv.open_slurm_jobs(&self.rack))
            .map_or(0, |jobs| jobs.iter().filter(|j| nodes.contains(&j.node.as_str())).count())
    }
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

fn node_out<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["nodes"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("node in outcome")
}

fn job_out<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["slurm_jobs"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("job in outcome")
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
}

#[test]
fn burnin_as_slurm_jobs_is_recorded_with_job_ids_survives_a_controller_restart_and_records_failed_jobs() {
    if let Some(why) = skip_reason() {
        if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
            panic!("KILN_REQUIRE_PEERS=1 but {why}");
        }
        println!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let mut cfg = LabConfig::standard(&repo(), 4);
    cfg.dir = repo().join("target/lab-slurmburn");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "ks".into();
    cfg.subnet = 12;
    cfg.bmc = false;
    cfg.fixtures = ["hgx-b200@1", "hgx-b200@2", "hgx-b200@3", "hgx-b200@4"]
        .iter()
        .map(|name| fixture_support::written(&cfg.dir, name))
        .collect();
    let _teardown = lab::Teardown(cfg.dir.clone());
    let lab = lab::up(&cfg).expect("lab up");
    let specs = SlurmNodeSpec::of_lab(&lab.state);
    let pids: Vec<(String, u32)> = lab.state.nodes.iter().map(|n| (n.name.clone(), n.sshd_pid)).collect();
    // KillWait: a job over its time limit gets SIGKILL 2 s after SIGTERM.
    let extras = SlurmExtras {
        conf: vec!["KillWait=2".into(), "MinJobAge=600".into()],
        sshd_namespaces: pids,
        ..SlurmExtras::default()
    };
    let cluster =
        SlurmCluster::start_with(&cfg.dir.join("slurm"), "ksctl", &cfg.host_address(), 16977, &specs, &extras);
    eprintln!("lab and slurm up in {:.1} s", started.elapsed().as_secs_f64());

    let wrappers = cfg.dir.join("wrappers");
    std::fs::create_dir_all(&wrappers).expect("mkdir");
    let sbatch_log = cfg.dir.join("sbatch.log");
    let _ = std::fs::remove_file(&sbatch_log);
    write_script(
        &wrappers.join("sbatch"),
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec /usr/bin/sbatch \"$@\"\n", sbatch_log.display()),
    );
    let manifest = lab.manifest().to_path_buf();
    let rack = kiln::rack::RackManifest::load(&manifest).expect("manifest").rack.id;
    let rig = Rig { cluster: &cluster, manifest, db: cfg.dir.join("kiln.db"), wrappers, sbatch_log, rack };
    let _ = std::fs::remove_file(&rig.db);

    // Burn-in is recorded against the node's last recorded model: validate first, over SSH.
    let m = rig.manifest.display().to_string();
    let d = rig.db.display().to_string();
    let out = rig.kiln_command(&["rack", "validate", "--rack", &m, "--db", &d]).output().expect("validate");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // Slurm's time limits are whole minutes, checked every 30 s: node04's job, over its limit,
    // ends a minute or more after it starts, so it starts first and the rest runs meanwhile.
    let over_time = start_a_job_over_its_time_limit(&rig, &cfg.dir);
    unknown_nodes_are_named_and_nothing_is_submitted(&rig, &cfg.dir);
    a_second_controller_of_a_followed_node_is_refused(&rig);
    a_restarted_controller_follows_the_jobs_it_submitted(&rig);
    a_cancelled_job_fails_its_node_with_the_job_id(&rig);
    a_job_over_its_time_limit_fails_its_node_with_the_job_id(&rig, over_time);
    an_unreachable_slurm_is_an_error_and_records_nothing(&rig, &cfg.dir);

    // Jobs run by slurmstepd outlive slurmd: cancel every one left before the cluster goes.
    let mut scancel = Command::new("scancel");
    cluster.configure(&mut scancel);
    let _ = scancel.args(["--user", "root"]).status();
    drop(cluster);
    drop(_teardown);
    eprintln!("slurm burn-in test took {:.1} s", started.elapsed().as_secs_f64());
}

/// node04's job is followed by the controller started first: a second one that names node04
/// exits 9 naming it, submits nothing and records nothing (two would record the job twice).
fn a_second_controller_of_a_followed_node_is_refused(rig: &Rig<'_>) {
    let before = rig.sbatch_calls("node04");
    let jobs = || Inventory::open_read_only(&rig.db).expect("open").slurm_jobs("node04").expect("jobs").len();
    let recorded = jobs();
    let (code, _, text) = rig.run(&["--nodes", "node03,node04"]);
    assert_eq!(code, 9, "{text}");
    assert!(text.contains("following the Slurm burn-in jobs of node04 in rack"), "{text}");
    assert_eq!(rig.sbatch_calls("node04"), before, "nothing submitted: {text}");
    assert_eq!(rig.sbatch_calls("node03"), 0, "not even for the node nobody follows: {text}");
    assert_eq!(jobs(), recorded, "nothing recorded");
}

fn unknown_nodes_are_named_and_nothing_is_submitted(rig: &Rig<'_>, dir: &Path) {
    let text = std::fs::read_to_string(&rig.manifest).expect("manifest");
    let extra = dir.join("rack-extra.toml");
    std::fs::write(&extra, format!("{text}\n[[nodes]]\nname = \"node99\"\naddress = \"10.77.12.99\"\n"))
        .expect("write the manifest");
    let args = ["rack", "burnin", "--via", "slurm", "--rack", extra.to_str().expect("utf8"), "--db"];
    let out = rig.kiln_command(&args).arg(&rig.db).output().expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("Slurm does not know node99") && stderr.contains("nothing was submitted"), "{stderr}");
    assert_eq!(rig.sbatch_calls("node99") + rig.sbatch_calls("node01"), 0);
    let _ = std::fs::remove_file(&extra);
}

/// Two nodes held busy so kiln's jobs wait; the controller is killed once
/// both are submitted; the holds end; a second controller submits nothing
/// and records both burn-ins (GPU tests skipped: kept, never passed) with
/// their job ids.
fn a_restarted_controller_follows_the_jobs_it_submitted(rig: &Rig<'_>) {
    let holds: Vec<String> = ["node01", "node02"].iter().map(|n| rig.hold(n)).collect();
    let args = ["--nodes", "node01,node02", "--", "--tests", "gemm", "--duration", "5s"];
    let mut first = rig.spawn(&args, &[]);
    let names: Vec<String> = ["node01", "node02"].iter().map(|n| format!("kiln-burnin-{}-{n}", rig.rack)).collect();
    let ids: Vec<String> = names.iter().map(|n| rig.job_named(n, "PENDING")).collect();
    // Recorded before any wait: both open in the inventory while the first controller waits.
    wait_for(Duration::from_secs(20), "both jobs recorded", || rig.open_jobs(&["node01", "node02"]) == 2);
    first.kill().expect("kill the controller");
    let _ = first.wait();
    let calls = || (rig.sbatch_calls("node01"), rig.sbatch_calls("node02"));
    assert_eq!(calls(), (1, 1), "one sbatch per node");
    for h in &holds {
        rig.slurm("scancel", &[h]);
    }

    let (code, out, text) = rig.run(&args);
    assert_eq!(code, 7, "no GPU: the burn-in skipped its GPU tests: {text}");
    assert_eq!(calls(), (1, 1), "the restarted controller submitted nothing: {text}");
    let inv = Inventory::open_read_only(&rig.db).expect("open");
    for (node, id) in ["node01", "node02"].iter().zip(&ids) {
        let job = job_out(&out, node);
        assert_eq!(job["job_id"].to_string(), *id, "{out:#}");
        assert_eq!(job["picked_up"], true);
        assert_eq!((job["state"].as_str(), job["exit_code"].as_i64()), (Some("FAILED"), Some(7)), "{job:#}");
        let n = node_out(&out, node);
        assert_eq!(n["status"], "skipped", "{n:#}");
        assert!(n["reason"].as_str().is_some_and(|r| r.contains(&format!("Slurm job {id}"))), "{n:#}");
        // The lab's nodes replay a capture: no GPU kernel runs there, as on a node without a driver.
        assert!(n["reason"].as_str().is_some_and(|r| r.contains("gemm skipped: replayed from a capture")), "{n:#}");
        let run_id = n["recorded"]["run_id"].as_i64().expect("a run recorded");
        // The run is kept and moves nothing: the node is validated, not burned in.
        assert_eq!(inv.state(node).expect("state"), LifecycleState::Validated);
        let row = inv.node(node).expect("query").expect("node");
        let run = inv.latest_run_of_kind(row.id, RunKind::Burnin).expect("query").expect("burn-in run");
        assert_eq!((run.id.0, run.exit_code), (run_id, 7));
        let jobs = inv.slurm_jobs(node).expect("jobs");
        assert_eq!(jobs.len(), 1, "{jobs:#?}");
        assert_eq!((jobs[0].job_id.to_string(), jobs[0].run_id), (id.clone(), Some(run_id)));
        let history = inv.history(node).expect("history");
        assert!(history.iter().any(|e| e.cause.contains(&format!("submitted as Slurm job {id}"))), "{history:#?}");
        assert!(
            history.iter().any(|e| e.cause.contains(&format!("Slurm job {id} FAILED: kiln exited 7, recorded as run"))),
            "{history:#?}"
        );
    }
    assert_eq!(rig.open_jobs(&["node01", "node02"]), 0);
}

/// node04 runs a host burn-in (a stress-ng that only sleeps) with a time limit of 5 s, which
/// Slurm takes as one minute.
fn start_a_job_over_its_time_limit(rig: &Rig<'_>, dir: &Path) -> Child {
    let sleeper = dir.join("stress-ng-sleeps");
    write_script(&sleeper, "#!/bin/sh\nexec sleep 300\n");
    let args = ["--nodes", "node04", "--time", "0:05", "--", "--tests", "host", "--duration", "5m"];
    let controller = rig.spawn(&args, &[("KILN_STRESS_NG", &sleeper)]);
    rig.job_named(&format!("kiln-burnin-{}-node04", rig.rack), "RUNNING");
    controller
}

/// Checks that a node's job ended in `state` with its id in the node's reason and failed state,
/// and left no burn-in run.
fn job_failed_the_node(json: &Value, node: &str, state: &str) -> u64 {
    let job = job_out(json, node);
    let id = job["job_id"].as_u64().expect("job id");
    assert_eq!(job["state"], state, "{json:#}");
    let n = node_out(json, node);
    assert_eq!((n["status"].as_str(), n["failure"].as_str()), (Some("peer_error"), Some("slurm_job")), "{n:#}");
    let want = format!("Slurm job {id} ended {state}");
    assert!(n["reason"].as_str().is_some_and(|r| r.contains(&want)), "{n:#}");
    id
}

fn recorded_as_failed(rig: &Rig<'_>, node: &str, id: u64, state: &str) {
    let inv = Inventory::open_read_only(&rig.db).expect("open");
    match inv.state(node).expect("state") {
        LifecycleState::Failed { reason } => {
            assert!(reason.contains(&format!("Slurm job {id} ended {state}")), "{reason}")
        }
        other => panic!("{node} is {other:?}, not failed"),
    }
    let row = inv.node(node).expect("query").expect("node");
    assert!(inv.latest_run_of_kind(row.id, RunKind::Burnin).expect("query").is_none(), "no burn-in recorded");
    let jobs = inv.slurm_jobs(node).expect("jobs");
    assert_eq!((jobs[0].job_id, jobs[0].state.as_str(), jobs[0].run_id), (id, state, None));
}

fn finished(controller: Child) -> (i32, Value, String) {
    let out = controller.wait_with_output().expect("wait for kiln");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, text)
}

/// node03's job waits behind a hold and is cancelled there.
fn a_cancelled_job_fails_its_node_with_the_job_id(rig: &Rig<'_>) {
    let hold = rig.hold("node03");
    let controller = rig.spawn(&["--nodes", "node03", "--", "--tests", "gemm"], &[]);
    let cancelled = rig.job_named(&format!("kiln-burnin-{}-node03", rig.rack), "PENDING");
    rig.slurm("scancel", &[&cancelled]);
    let (code, json, text) = finished(controller);
    rig.slurm("scancel", &[&hold]);
    assert_eq!(code, 6, "{text}");
    let id = job_failed_the_node(&json, "node03", "CANCELLED");
    assert_eq!(id.to_string(), cancelled);
    recorded_as_failed(rig, "node03", id, "CANCELLED");
    assert_eq!(rig.sbatch_calls("node03"), 1);
}

fn a_job_over_its_time_limit_fails_its_node_with_the_job_id(rig: &Rig<'_>, controller: Child) {
    let t = Instant::now();
    let (code, json, text) = finished(controller);
    eprintln!("waited {:.1} s more for the job over its time limit", t.elapsed().as_secs_f64());
    assert_eq!(code, 6, "{text}");
    let id = job_failed_the_node(&json, "node04", "TIMEOUT");
    recorded_as_failed(rig, "node04", id, "TIMEOUT");
    assert_eq!(rig.sbatch_calls("node04"), 1);
}

/// slurm.conf pointing at a port where no slurmctld listens: a clear error,
/// exit 6, and nothing recorded.
fn an_unreachable_slurm_is_an_error_and_records_nothing(rig: &Rig<'_>, dir: &Path) {
    let conf = std::fs::read_to_string(&rig.cluster.conf).expect("slurm.conf");
    let dead = dir.join("slurm-dead.conf");
    std::fs::write(&dead, conf.replace("SlurmctldPort=16977", "SlurmctldPort=16999")).expect("write");
    let history = |inv: &Inventory| inv.history("node01").map(|h| h.len()).unwrap_or(0);
    let before = history(&Inventory::open_read_only(&rig.db).expect("open"));
    let args = rig.burnin_args(&["--force", "--nodes", "node01"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let out = rig.kiln_command(&refs).env("SLURM_CONF", &dead).output().expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("unreachable Slurm answered in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("Slurm does not answer, nothing was submitted") && stderr.contains("sinfo"), "{stderr}");
    let inv = Inventory::open_read_only(&rig.db).expect("open");
    assert_eq!(history(&inv), before, "nothing recorded");
    assert_eq!(inv.state("node01").expect("state"), LifecycleState::Validated);
    let _ = std::fs::remove_file(&dead);
}
