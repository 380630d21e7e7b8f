//! Slurm as a way to run a node's burn-in: submit one exclusive job per node (`sbatch`), follow
//! the jobs (`squeue`, then `sacct` for jobs squeue no longer lists), and the job script.
//!
//! The programs find slurmctld through the site's slurm.conf (or `SLURM_CONF`) and authenticate
//! with munge, so kiln holds no Slurm credentials. A slurmctld that does not answer makes them
//! give up after slurm.conf's `MessageTimeout`. Output is read in their parsable forms
//! (`sbatch --parsable`, `squeue -o` with `|` between fields, `sacct -P`), which every Slurm
//! release since 2.x prints the same way; `--json` needs the data-parser plugins a site may not
//! have installed, so it is not used.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use super::push::guarded;
use super::transport::shell_quote;

/// A Slurm command that could not be run or refused.
#[derive(Debug, thiserror::Error)]
pub enum SlurmJobError {
    #[error("run {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} exited {code}: {message}")]
    Command { command: String, code: i32, message: String },
    #[error("{command} printed {output:?}, not {what}")]
    Parse { command: String, output: String, what: &'static str },
}

/// One job to submit: the node's burn-in.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub node: String,
    pub name: String,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// sbatch's `--time` (`MIN`, `MIN:SEC`, `H:M:S`, `D-H:M`).
    pub time: String,
    /// The batch script (`job_script`).
    pub script: String,
}

impl JobRequest {
    /// sbatch's arguments: the node pinned, the job exclusive, its output
    /// left to the script (which writes into the node's job directory).
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = vec![
            "--parsable".to_string(),
            "--exclusive".into(),
            "--nodes=1".into(),
            format!("--nodelist={}", self.node),
            format!("--job-name={}", self.name),
            format!("--time={}", self.time),
            "--output=/dev/null".into(),
            "--error=/dev/null".into(),
        ];
        if let Some(p) = &self.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            args.push(format!("--account={a}"));
        }
        args
    }
}

/// A job as Slurm last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// Slurm's state word: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`,
    /// `CANCELLED`, `TIMEOUT`, `NODE_FAIL`, ...
    pub state: String,
    /// squeue's reason (`Resources`, `None`), when it gives one.
    pub reason: Option<String>,
}

/// States in which a job will not run any more.
const ENDED: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "REVOKED",
    "SPECIAL_EXIT",
];

/// Whether a job in `state` has ended (any state not listed is still on its way).
pub fn has_ended(state: &str) -> bool {
    ENDED.contains(&state)
}

/// Whether a job in `state` ran its script to the end: its exit code is
/// kiln's (a burn-in that skipped its GPU tests exits 7 and shows `FAILED`).
pub fn ran_to_end(state: &str) -> bool {
    matches!(state, "COMPLETED" | "FAILED")
}

/// What kiln needs from Slurm to run burn-in as jobs.
pub trait SlurmJobs: Sync {
    /// Every node name the cluster knows.
    fn known_nodes(&self) -> Result<BTreeSet<String>, SlurmJobError>;
    /// Submits the job; returns its id.
    fn submit(&self, job: &JobRequest) -> Result<u64, SlurmJobError>;
    /// The status of each job Slurm still knows, by id; a job it has
    /// forgotten (purged after `MinJobAge`, no accounting) is absent.
    fn status(&self, ids: &[u64]) -> Result<BTreeMap<u64, JobStatus>, SlurmJobError>;
    /// Jobs with one of `names` that have not ended: `(id, name, status)`.
    fn active_by_name(&self, names: &[String]) -> Result<Vec<(u64, String, JobStatus)>, SlurmJobError>;
}

/// The real backend: Slurm's own commands, found on `PATH`.
#[derive(Debug, Clone, Default)]
pub struct SlurmCli;

fn run(program: &str, args: &[String], input: Option<&[u8]>) -> Result<(i32, String, String), SlurmJobError> {
    let command = format!("{program} {}", args.join(" "));
    let spawn = |source| SlurmJobError::Spawn { command: command.clone(), source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(bytes).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    let code = out.status.code().unwrap_or(-1);
    tracing::debug!(%command, code, "slurm command ran");
    Ok((code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// The first line that says something, for error texts.
fn first_line(stderr: &str, stdout: &str) -> String {
    stderr.lines().chain(stdout.lines()).map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message").to_string()
}

fn checked(program: &str, args: &[String], input: Option<&[u8]>) -> Result<String, SlurmJobError> {
    let (code, stdout, stderr) = run(program, args, input)?;
    if code != 0 {
        return Err(SlurmJobError::Command {
            command: format!("{program} {}", args.join(" ")),
            code,
            message: first_line(&stderr, &stdout),
        });
    }
    Ok(stdout)
}

fn ids_arg(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

impl SlurmJobs for SlurmCli {
    fn known_nodes(&self) -> Result<BTreeSet<String>, SlurmJobError> {
        let out = checked("sinfo", &["-h".into(), "-N".into(), "-o".into(), "%N".into()], None)?;
        Ok(out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    fn submit(&self, job: &JobRequest) -> Result<u64, SlurmJobError> {
        let args = job.sbatch_args();
        let out = checked("sbatch", &args, Some(job.script.as_bytes()))?;
        parse_sbatch(&out).ok_or_else(|| SlurmJobError::Parse {
            command: format!("sbatch {}", args.join(" ")),
            output: out.trim().chars().take(200).collect(),
            what: "a job id (sbatch --parsable)",
        })
    }

    fn status(&self, ids: &[u64]) -> Result<BTreeMap<u64, JobStatus>, SlurmJobError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let args = vec![
            "-h".to_string(),
            "--states=all".into(),
            format!("--jobs={}", ids_arg(ids)),
            "-o".into(),
            "%i|%T|%r".into(),
        ];
        // squeue exits 1 with "Invalid job id specified" once every job asked
        // for has been purged; that is an answer, not an unreachable Slurm.
        let (code, stdout, stderr) = run("squeue", &args, None)?;
        let mut found = if code == 0 {
            parse_squeue(&stdout)
        } else if stderr.contains("Invalid job id") {
            BTreeMap::new()
        } else {
            return Err(SlurmJobError::Command {
                command: format!("squeue {}", args.join(" ")),
                code,
                message: first_line(&stderr, &stdout),
            });
        };
        let missing: Vec<u64> = ids.iter().copied().filter(|i| !found.contains_key(i)).collect();
        if !missing.is_empty() {
            // Accounting, where the site has it, remembers jobs squeue forgot.
            // Without it (`accounting_storage/none`) sacct refuses: the jobs
            // stay unknown and the caller reads what they left on the node.
            let args = vec![
                "-n".to_string(),
                "-P".into(),
                "-X".into(),
                format!("--jobs={}", ids_arg(&missing)),
                "-o".into(),
                "JobID,State".into(),
            ];
            if let Ok((0, stdout, _)) = run("sacct", &args, None) {
                for (id, status) in parse_sacct(&stdout) {
                    found.entry(id).or_insert(status);
                }
            }
        }
        Ok(found)
    }

    fn active_by_name(&self, names: &[String]) -> Result<Vec<(u64, String, JobStatus)>, SlurmJobError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let args = vec!["-h".to_string(), format!("--name={}", names.join(",")), "-o".into(), "%i|%T|%r|%j".into()];
        let out = checked("squeue", &args, None)?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().splitn(4, '|');
                let (id, state, reason, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
                let status = JobStatus { state: state.trim().to_string(), reason: reason_of(reason) };
                Some((id.trim().parse().ok()?, name.trim().to_string(), status))
            })
            .filter(|(_, name, s)| names.contains(name) && !has_ended(&s.state))
            .collect())
    }
}

/// `sbatch --parsable`: `ID` or `ID;CLUSTER`.
pub fn parse_sbatch(out: &str) -> Option<u64> {
    let line = out.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    line.split(';').next()?.trim().parse().ok()
}

fn reason_of(r: &str) -> Option<String> {
    let r = r.trim();
    (!r.is_empty() && r != "None" && r != "(null)").then(|| r.to_string())
}

/// `squeue -h -o '%i|%T|%r'` lines.
pub fn parse_squeue(out: &str) -> BTreeMap<u64, JobStatus> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            let id = f.next()?.trim().parse().ok()?;
            let state = f.next()?.trim().to_string();
            let reason = f.next().and_then(reason_of);
            (!state.is_empty()).then_some((id, JobStatus { state, reason }))
        })
        .collect()
}

/// `sacct -n -P -X -o JobID,State` lines; `CANCELLED by 0` is `CANCELLED`.
pub fn parse_sacct(out: &str) -> BTreeMap<u64, JobStatus> {
    out.lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once('|')?;
            let state = state.split_whitespace().next()?.to_string();
            Some((id.trim().parse().ok()?, JobStatus { state, reason: None }))
        })
        .collect()
}

/// Where a job leaves its files on the node: `DIR/kiln-burnin-<job id>`
/// with `.json` (kiln's JSON), `.exit` (kiln's exit code, written last)
/// and `.err` (its stderr).
pub fn job_files(job_dir: &str, job_id: u64) -> String {
    format!("{}/kiln-burnin-{job_id}", job_dir.trim_end_matches('/'))
}

/// Exit code of the job script when it cannot create its job directory.
pub const JOB_DIR_EXIT: i32 = 96;

/// The batch script of one node's burn-in. It runs `argv` (the node command)
/// behind the same guard the SSH path uses (`push::guarded`): kiln runs only
/// when the file at `remote` has the checksum meant for the node's
/// architecture (`expected`). A batch job has no controller to answer, so a
/// binary changed since it was checked stops the job (exit 97) instead of
/// being pushed. kiln's JSON goes to `<job files>.json`, its exit code to
/// `<job files>.exit` once the JSON is complete.
pub fn job_script(
    rack: &str,
    node: &str,
    job_dir: &str,
    remote: &str,
    expected: &[(&str, &str)],
    argv: &[String],
) -> String {
    let guard: Vec<String> = guarded(remote, expected, argv).iter().map(|a| shell_quote(a)).collect();
    let one_line = |s: &str| s.replace(['\n', '\r'], " ");
    format!(
        "#!/bin/sh\n\
         # kiln rack burnin --via slurm: rack {rack}, node {node}\n\
         d={dir}\n\
         mkdir -p -- \"$d\" || exit {JOB_DIR_EXIT}\n\
         j=\"$d/kiln-burnin-$SLURM_JOB_ID\"\n\
         exec 2>\"$j.err\"\n\
         {guard} > \"$j.json.part\"\n\
         c=$?\n\
         mv -f -- \"$j.json.part\" \"$j.json\"\n\
         echo \"$c\" > \"$j.exit.part\" && mv -f -- \"$j.exit.part\" \"$j.exit\"\n\
         exit \"$c\"\n",
        rack = one_line(rack),
        node = one_line(node),
        dir = shell_quote(job_dir),
        guard = guard.join(" "),
    )
}

/// The node's job directory: `jobs` beside the directory of the node's kiln
/// (`/var/lib/kiln/bin/kiln` -> `/var/lib/kiln/jobs`).
pub fn job_dir_for(remote: &str) -> String {
    let path = std::path::Path::new(remote);
    let base = path.parent().and_then(|bin| bin.parent()).filter(|p| !p.as_os_str().is_empty());
    match base {
        Some(b) if b != std::path::Path::new("/") => format!("{}/jobs", b.display()),
        _ => "/var/lib/kiln/jobs".to_string(),
    }
}

/// Checks `--time` as sbatch reads it, so a typo is refused before anything
/// is submitted: `MIN`, `MIN:SEC`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn check_time(s: &str) -> Result<(), String> {
    let digits = |p: &str| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let ok = days.is_none_or(digits) && parts.iter().all(|p| digits(p)) && (1..=3).contains(&parts.len());
    let zero = s.chars().filter(|c| c.is_ascii_digit()).all(|c| c == '0');
    if !ok {
        Err(format!("{s:?} is not a Slurm time (MIN, MIN:SEC, H:M:S, D-H, D-H:M or D-H:M:S)"))
    } else if zero {
        Err(format!("{s:?} is no time at all; give the job a time limit above zero"))
    } else {
        Ok(())
    }
}

/// sbatch's `--time` for a limit in seconds, rounded up to whole minutes.
pub fn minutes_for(seconds: u64) -> String {
    seconds.div_ceil(60).max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_outputs_are_read_and_garbage_is_not() {
        assert_eq!(parse_sbatch("4242\n"), Some(4242));
        assert_eq!(parse_sbatch("4242;site-a\n"), Some(4242));
        assert_eq!(parse_sbatch("sbatch: warning: x\n17\n"), Some(17));
        assert_eq!(parse_sbatch("Submitted batch job 3\n"), None);
        let q = parse_squeue("12|PENDING|Resources\n13|COMPLETED|None\nnot a line\n14||x\n");
        assert_eq!(q.len(), 2, "{q:?}");
        assert_eq!(q[&12], JobStatus { state: "PENDING".into(), reason: Some("Resources".into()) });
        assert_eq!(q[&13].reason, None);
        let a = parse_sacct("12|CANCELLED by 0\n13|TIMEOUT\n|x\n");
        assert_eq!(a[&12].state, "CANCELLED");
        assert_eq!(a[&13].state, "TIMEOUT");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn states_that_end_a_job_and_those_that_ran_kiln_to_its_end() {
        for s in ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"] {
            assert!(has_ended(s), "{s}");
        }
        for s in ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"] {
            assert!(!has_ended(s), "{s}");
        }
        assert!(ran_to_end("FAILED") && ran_to_end("COMPLETED"));
        assert!(!ran_to_end("CANCELLED") && !ran_to_end("TIMEOUT"));
    }

    #[test]
    fn time_limits_are_checked_as_sbatch_reads_them() {
        for ok in ["15", "0:10", "1:30:00", "2-0", "2-12:00", "1-00:00:30"] {
            assert_eq!(check_time(ok), Ok(()), "{ok}");
        }
        for bad in ["", "ten", "1:2:3:4", "-5", "1-", "0", "0:00", "15m", "1.5"] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
        assert_eq!(minutes_for(900), "15");
        assert_eq!(minutes_for(901), "16");
        assert_eq!(minutes_for(1), "1");
    }

    #[test]
    fn the_job_directory_is_beside_the_binarys() {
        assert_eq!(job_dir_for("/var/lib/kiln/bin/kiln"), "/var/lib/kiln/jobs");
        assert_eq!(job_dir_for("/opt/k/bin/kiln"), "/opt/k/jobs");
        assert_eq!(job_dir_for("/kiln"), "/var/lib/kiln/jobs");
        assert_eq!(job_files("/var/lib/kiln/jobs/", 7), "/var/lib/kiln/jobs/kiln-burnin-7");
    }

    #[test]
    fn sbatch_pins_the_node_and_passes_only_what_was_asked() {
        let job = JobRequest {
            node: "node01".into(),
            name: "kiln-burnin-r1-node01".into(),
            partition: None,
            account: Some("bringup".into()),
            time: "15".into(),
            script: String::new(),
        };
        let args = job.sbatch_args();
        for want in ["--parsable", "--exclusive", "--nodelist=node01", "--job-name=kiln-burnin-r1-node01"] {
            assert!(args.iter().any(|a| a == want), "{want}: {args:?}");
        }
        assert!(args.iter().any(|a| a == "--account=bringup"));
        assert!(!args.iter().any(|a| a.starts_with("--partition")));
    }

    /// The script runs for real here: the node command runs behind the guard
    /// when the binary is the expected one, and its JSON and exit code land
    /// in the job files; a different binary stops the job at the guard.
    #[test]
    fn the_job_script_runs_kiln_only_behind_the_guard_and_leaves_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin/kiln");
        std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
        std::fs::write(&bin, "#!/bin/sh\necho '{\"verdict\":\"skipped\"}'\necho note >&2\nexit 7\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sha = crate::fleet::local_sha256(&bin).expect("hash");
        let remote = bin.to_str().expect("utf8");
        let jobs = dir.path().join("jobs");
        let jobs = jobs.to_str().expect("utf8");
        let argv = vec![remote.to_string(), "burnin".into(), "--json".into()];
        let run_script = |expected: &str, id: &str| {
            let script = job_script("r1", "node01", jobs, remote, &[(std::env::consts::ARCH, expected)], &argv);
            let out = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env("SLURM_JOB_ID", id)
                .stdin(Stdio::null())
                .output()
                .expect("run the script");
            out.status.code()
        };
        assert_eq!(run_script(&sha, "41"), Some(7));
        let files = job_files(jobs, 41);
        assert_eq!(std::fs::read_to_string(format!("{files}.exit")).expect("exit").trim(), "7");
        assert_eq!(std::fs::read_to_string(format!("{files}.json")).expect("json").trim(), "{\"verdict\":\"skipped\"}");
        assert!(std::fs::read_to_string(format!("{files}.err")).expect("err").contains("note"));
        // Another binary than the one checked: the guard stops before kiln runs.
        let other = "0".repeat(64);
        assert_eq!(run_script(&other, "42"), Some(97));
        let files = job_files(jobs, 42);
        assert_eq!(std::fs::read_to_string(format!("{files}.json")).expect("json"), "");
        assert_eq!(std::fs::read_to_string(format!("{files}.exit")).expect("exit").trim(), "97");
    }
}
