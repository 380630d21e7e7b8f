//! A real Slurm cluster for tests: munged, slurmctld, and one slurmd per lab node, without systemd.
//!
//! munged runs as the munge user with its own key and socket; slurmctld runs
//! in its own UTS namespace under the hostname `SlurmctldHost` names; each
//! slurmd runs in its node's network namespace (`nsenter --net`, not `ip
//! netns exec`, which remounts /sys and fails slurmd's cgroup check) with its
//! own NodeName. No cgroup plugins, so nothing needs systemd. Every process
//! is stopped by pid when the cluster is dropped.

// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The Debian programs this needs; the first missing one is returned.
pub fn missing_program() -> Option<&'static str> {
    [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/bin/scontrol",
        "/usr/bin/sinfo",
        "/usr/sbin/munged",
        "/usr/bin/nsenter",
        "/usr/bin/unshare",
    ]
    .into_iter()
    .find(|p| !Path::new(p).exists())
}

/// One lab node as Slurm sees it.
pub struct SlurmNodeSpec {
    pub name: String,
    pub address: String,
    pub netns: String,
}

impl SlurmNodeSpec {
    /// Every node of a lab, in its order: one slurmd each, in the node's namespace.
    pub fn of_lab(state: &xtask::lab::LabState) -> Vec<SlurmNodeSpec> {
        state
            .nodes
            .iter()
            .map(|n| SlurmNodeSpec { name: n.name.clone(), address: n.address.clone(), netns: n.netns.clone() })
            .collect()
    }
}

pub struct SlurmCluster {
    pub conf: PathBuf,
    children: Vec<(String, Child)>,
}

/// What a test changes in the cluster it starts: slurm.conf lines (`Key=Value`) that replace
/// the line of the same key or are added, and files written beside slurm.conf (a
/// topology.conf) before the daemons start; and, per node name, the pid of the node's sshd,
/// whose network, UTS and mount namespaces that node's slurmd then runs in (`nsenter --target
/// PID --net --uts --mount`), so a job sees what an SSH session sees (without, slurmd joins
/// the node's network namespace alone).
#[derive(Debug, Default, Clone)]
pub struct SlurmExtras {
    pub conf: Vec<String>,
    pub files: Vec<(String, String)>,
    pub sshd_namespaces: Vec<(String, u32)>,
}

fn uid_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().expect("run id");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no user {user}"))
    };
    (id("-u"), id("-g"))
}

fn chown(path: &Path, owner: (u32, u32)) {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn log_file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())))
}

impl SlurmCluster {
    /// Starts munged, slurmctld (as `controller` at `controller_address`) and
    /// a slurmd per node, and waits until every node is idle. Ports are
    /// `port_base` (slurmctld) and `port_base + 1` (slurmd).
    pub fn start(
        dir: &Path,
        controller: &str,
        controller_address: &str,
        port_base: u16,
        nodes: &[SlurmNodeSpec],
    ) -> SlurmCluster {
        Self::start_with(dir, controller, controller_address, port_base, nodes, &SlurmExtras::default())
    }

    /// `start` with `extras` in slurm.conf and beside it.
    pub fn start_with(
        dir: &Path,
        controller: &str,
        controller_address: &str,
        port_base: u16,
        nodes: &[SlurmNodeSpec],
        extras: &SlurmExtras,
    ) -> SlurmCluster {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("state")).expect("create the slurm dir");
        std::fs::create_dir_all(dir.join("log")).expect("create the log dir");
        let munge = dir.join("munge");
        std::fs::create_dir_all(&munge).expect("create the munge dir");
        let owner = uid_of("munge");
        chown(&munge, owner);
        // Others need to reach the socket inside, but not list the directory.
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o711)).expect("chmod munge dir");
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        {
            use std::io::Read;
            std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("random key");
        }
        std::fs::write(&key, &bytes).expect("write the munge key");
        chown(&key, owner);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod key");
        let socket = munge.join("munge.socket");

        let mut cluster = SlurmCluster { conf: dir.join("slurm.conf"), children: Vec::new() };
        let munged = Command::new("runuser")
            .args(["-u", "munge", "--", "munged", "-F", "--force"])
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--log-file={}", munge.join("munged.log").display()))
            .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
            .arg(format!("--seed-file={}", munge.join("munged.seed").display()))
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("log/munged.out")))
            .spawn()
            .expect("start munged");
        cluster.children.push(("munged".into(), munged));
        wait_for(Duration::from_secs(10), "munged's socket", || socket.exists());

        let mut conf = format!(
            "ClusterName=kilntest\nSlurmctldHost={controller}({controller_address})\nSlurmctldPort={port_base}\n\
             SlurmdPort={}\nAuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={}\n\
             SlurmUser=root\nSlurmdUser=root\nStateSaveLocation={}\nSlurmdSpoolDir={}/spool-%n\n\
             SlurmctldPidFile={}/slurmctld.pid\nSlurmdPidFile={}/slurmd-%n.pid\n\
             SlurmctldLogFile={}/log/slurmctld.log\nSlurmdLogFile={}/log/slurmd-%n.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
             SwitchType=switch/none\nSelectType=select/linear\nMpiDefault=none\nReturnToService=2\n\
             SchedulerType=sched/builtin\nAccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
             SlurmctldTimeout=30\nSlurmdTimeout=30\nMessageTimeout=5\n",
            port_base + 1,
            socket.display(),
            dir.join("state").display(),
            dir.display(),
            dir.display(),
            dir.display(),
            dir.display(),
            dir.display(),
        );
        for n in nodes {
            conf.push_str(&format!("NodeName={} NodeAddr={} CPUs=1 State=UNKNOWN\n", n.name, n.address));
            std::fs::create_dir_all(dir.join(format!("spool-{}", n.name))).expect("spool dir");
        }
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        conf.push_str(&format!("PartitionName=main Nodes={} Default=YES MaxTime=INFINITE State=UP\n", names.join(",")));
        for line in &extras.conf {
            let key = line.split('=').next().unwrap_or_default().to_ascii_lowercase();
            let mut kept: Vec<&str> =
                conf.lines().filter(|l| l.split('=').next().unwrap_or_default().to_ascii_lowercase() != key).collect();
            kept.push(line);
            conf = kept.join("\n") + "\n";
        }
        std::fs::write(&cluster.conf, conf).expect("write slurm.conf");
        for (name, text) in &extras.files {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        }

        let ctld = Command::new("unshare")
            .args(["--uts", "sh", "-c", "hostname \"$1\" && exec slurmctld -D -f \"$2\"", "sh", controller])
            .arg(&cluster.conf)
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("log/slurmctld.out")))
            .spawn()
            .expect("start slurmctld");
        cluster.children.push(("slurmctld".into(), ctld));
        wait_for(Duration::from_secs(20), "slurmctld to answer", || cluster.scontrol(&["ping"]).status.success());
        for n in nodes {
            let mut enter = Command::new("nsenter");
            match extras.sshd_namespaces.iter().find(|(name, _)| *name == n.name) {
                Some((_, pid)) => enter.args(["--target", &pid.to_string(), "--net", "--uts", "--mount"]),
                None => enter.arg(format!("--net=/run/netns/{}", n.netns)),
            };
            let slurmd = enter
                .args(["slurmd", "-D", "-N", &n.name, "-f"])
                .arg(&cluster.conf)
                .stdout(Stdio::null())
                .stderr(log_file(&dir.join(format!("log/slurmd-{}.out", n.name))))
                .spawn()
                .expect("start slurmd");
            cluster.children.push((format!("slurmd {}", n.name), slurmd));
        }
        wait_for(Duration::from_secs(30), "every node idle", || names.iter().all(|n| cluster.state(n).0 == "idle"));
        cluster
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("SLURM_CONF", &self.conf);
    }

    pub fn scontrol(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("scontrol");
        self.env(&mut cmd);
        cmd.args(args).output().expect("run scontrol")
    }

    /// `sinfo`'s long state (`idle`, `drained`, `draining`, `down`) and reason (`none` when unset).
    pub fn state(&self, node: &str) -> (String, String) {
        let mut cmd = Command::new("sinfo");
        self.env(&mut cmd);
        let out = cmd.args(["-h", "-N", "-n", node, "-o", "%N|%T|%E"]).output().expect("run sinfo");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or_default();
        let mut parts = line.splitn(3, '|');
        let _name = parts.next();
        (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string())
    }

    /// Waits up to `secs` for `node`'s sinfo state to be `want`, returning the
    /// last state seen. A resumed node shows `idle*` (not responding) until
    /// slurmctld's next ping of its slurmd, a second or so later.
    pub fn settle(&self, node: &str, want: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (state, _) = self.state(node);
            if state == want || Instant::now() > deadline {
                return state;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sets SLURM_CONF for a command that runs scontrol (kiln).
    pub fn configure(&self, cmd: &mut Command) {
        self.env(cmd);
    }
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        // slurmds first, then the controller, then munged: reverse start order.
        for (_, child) in self.children.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}
