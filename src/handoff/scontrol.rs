//! The real Slurm backend: runs `scontrol` and reads its answers.
//!
//! `scontrol` finds slurmctld through the site's slurm.conf (or `SLURM_CONF`)
//! and authenticates with munge, so kiln needs no Slurm credentials of its
//! own. It can meet: a missing program, an unreachable slurmctld (scontrol
//! gives up after its MessageTimeout), an unknown node, and a RESUME refused
//! because the node is not drained.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::slurm::{Resumed, SlurmControl, SlurmNode};
use super::SlurmError;

/// Runs the `scontrol` at `program` (a name on PATH or a path).
#[derive(Debug, Clone)]
pub struct Scontrol {
    pub program: PathBuf,
}

impl Scontrol {
    pub fn new(program: &Path) -> Self {
        Scontrol { program: program.to_path_buf() }
    }

    /// Runs scontrol with `args`; returns (exit code, stdout, stderr).
    pub(super) fn run(&self, args: &[&str]) -> Result<(i32, String, String), SlurmError> {
        let command = format!("{} {}", self.program.display(), args.join(" "));
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|source| SlurmError::Spawn { command: command.clone(), source })?;
        let code = out.status.code().unwrap_or(-1);
        tracing::debug!(%command, code, "scontrol ran");
        Ok((code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
    }

    fn update(&self, node: &str, fields: &[&str]) -> Result<(i32, String), SlurmError> {
        let name = format!("NodeName={node}");
        let mut args = vec!["update", name.as_str()];
        args.extend_from_slice(fields);
        let (code, stdout, stderr) = self.run(&args)?;
        // Slurm's messages go to stderr; keep stdout too in case a version prints there.
        Ok((code, format!("{stderr}{stdout}")))
    }
}

/// The first line of a message, trimmed, for error texts.
fn first_line(text: &str) -> String {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message").to_string()
}

impl SlurmControl for Scontrol {
    fn show_node(&self, name: &str) -> Result<SlurmNode, SlurmError> {
        let (code, stdout, stderr) = self.run(&["show", "node", name])?;
        if code != 0 {
            // scontrol 22.05 prints "Node X not found" on stdout, not stderr.
            if stderr.contains("not found") || stdout.contains("not found") {
                return Err(SlurmError::UnknownNode { node: name.to_string() });
            }
            return Err(SlurmError::Command {
                command: format!("scontrol show node {name}"),
                code,
                message: first_line(if stderr.trim().is_empty() { &stdout } else { &stderr }),
            });
        }
        parse_show_node(name, &stdout)
    }

    fn drain(&self, name: &str, reason: &str) -> Result<(), SlurmError> {
        let reason_field = format!("Reason={reason}");
        let (code, stderr) = self.update(name, &["State=DRAIN", &reason_field])?;
        match code {
            0 => {
                tracing::info!(node = name, reason, "slurm node drained");
                Ok(())
            }
            _ if stderr.contains("Invalid node name") => Err(SlurmError::UnknownNode { node: name.to_string() }),
            _ => Err(SlurmError::Command {
                command: format!("scontrol update NodeName={name} State=DRAIN"),
                code,
                message: first_line(&stderr),
            }),
        }
    }

    fn resume(&self, name: &str) -> Result<Resumed, SlurmError> {
        let (code, stderr) = self.update(name, &["State=RESUME"])?;
        match code {
            0 => {
                tracing::info!(node = name, "slurm node resumed");
                Ok(Resumed::Done)
            }
            // Slurm refuses to resume a node that is neither drained nor down.
            _ if stderr.contains("Invalid node state specified") => Ok(Resumed::AlreadyUp),
            _ if stderr.contains("Invalid node name") => Err(SlurmError::UnknownNode { node: name.to_string() }),
            _ => Err(SlurmError::Command {
                command: format!("scontrol update NodeName={name} State=RESUME"),
                code,
                message: first_line(&stderr),
            }),
        }
    }
}

/// Reads `scontrol show node NAME` (the multi-line form): `State=IDLE+DRAIN`
/// among `Key=Value` words, and `Reason=...` on a line of its own, ending in
/// `[user@time]`. A value with spaces (Reason, OS) runs to the end of its line.
pub fn parse_show_node(name: &str, text: &str) -> Result<SlurmNode, SlurmError> {
    let mut state = None;
    let mut reason = None;
    for line in text.lines().map(str::trim) {
        if let Some(r) = line.strip_prefix("Reason=") {
            reason = Some(strip_stamp(r).to_string());
            continue;
        }
        if line.starts_with("OS=") {
            continue;
        }
        for word in line.split_whitespace() {
            if let Some(s) = word.strip_prefix("State=") {
                state = Some(s.to_string());
            }
        }
    }
    let state = state.ok_or_else(|| SlurmError::Parse {
        node: name.to_string(),
        what: format!("no State= in scontrol's answer: {:?}", first_line(text)),
    })?;
    // `IDLE*` marks a node that does not respond; Slurm prints the flag as `*`.
    let mut parts = state.split('+').map(|p| p.trim_end_matches('*').to_string());
    let base = parts.next().unwrap_or_default();
    let mut flags: Vec<String> = parts.collect();
    if state.split('+').next().is_some_and(|b| b.ends_with('*')) {
        flags.push("NOT_RESPONDING".into());
    }
    let reason = reason.filter(|r| !r.is_empty() && r != "(null)");
    Ok(SlurmNode { name: name.to_string(), state: base, flags, reason })
}

/// `kiln: gpu.count (run 3) [root@2025-03-01T08:00:00]` to `kiln: gpu.count (run 3)`.
fn strip_stamp(reason: &str) -> &str {
    let r = reason.trim_end();
    match (r.ends_with(']'), r.rfind(" [")) {
        (true, Some(i)) if r[i + 2..].contains('@') => &r[..i],
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from slurmctld 22.05.8 (Debian bookworm's slurm-wlm).
    const DRAINED: &str = "NodeName=node01 Arch=x86_64 CoresPerSocket=1 
   CPUAlloc=0 CPUEfctv=1 CPUTot=1 CPULoad=5.35
   AvailableFeatures=(null)
   ActiveFeatures=(null)
   Gres=(null)
   NodeAddr=10.77.9.11 NodeHostName=node01 Version=22.05.8
   OS=Linux 6.18.44-fc-v595 #1 SMP PREEMPT_DYNAMIC @0 
   RealMemory=1 AllocMem=0 FreeMem=5316 Sockets=1 Boards=1
   State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A
   Partitions=main 
   BootTime=2026-11-22T10:09:33 SlurmdStartTime=2026-11-22T10:48:20
   LastBusyTime=2026-11-22T10:48:20
   CfgTRES=cpu=1,mem=1M,billing=1
   AllocTRES=
   CapWatts=n/a
   CurrentWatts=0 AveWatts=0
   ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s
   Reason=kiln: gpu.count (run 3) [root@2026-11-22T10:48:25]
";

    #[test]
    fn reads_state_flags_and_reason() {
        let n = parse_show_node("node01", DRAINED).expect("parses");
        assert_eq!(n.state, "IDLE");
        assert_eq!(n.flags, vec!["DRAIN"]);
        assert_eq!(n.reason.as_deref(), Some("kiln: gpu.count (run 3)"));
        assert!(n.drained() && n.reason_is_kiln());
        let idle = DRAINED
            .replace("IDLE+DRAIN", "IDLE")
            .replace("   Reason=kiln: gpu.count (run 3) [root@2026-11-22T10:48:25]\n", "");
        let n = parse_show_node("node01", &idle).expect("parses");
        assert!(!n.drained() && n.reason.is_none());
        let down = DRAINED.replace("IDLE+DRAIN", "DOWN*").replace("kiln: gpu.count (run 3)", "Not responding");
        let n = parse_show_node("node01", &down).expect("parses");
        assert!(n.down() && !n.reason_is_kiln());
        assert_eq!(n.flags, vec!["NOT_RESPONDING"]);
    }

    #[test]
    fn garbage_is_an_error_naming_the_node() {
        let err = parse_show_node("node07", "something else entirely\n").expect_err("no state");
        assert!(err.to_string().contains("node07"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let s = Scontrol::new(Path::new("/nonexistent/scontrol"));
        let err = s.show_node("n1").expect_err("no program");
        assert!(matches!(err, SlurmError::Spawn { .. }), "{err:?}");
    }
}
