//! Reading what stress-ng reports: its `--yaml` metrics and the failure lines of its log.

use yaml_rust2::{Yaml, YamlLoader};

#[derive(Debug, thiserror::Error)]
pub enum StressNgError {
    #[error("stress-ng YAML is not valid YAML")]
    Yaml(#[source] yaml_rust2::ScanError),
    #[error("stress-ng YAML has no documents")]
    Empty,
    #[error("stress-ng YAML: metrics entry {index}: {problem}")]
    Metric { index: usize, problem: String },
}

/// One stressor's line of the metrics table.
#[derive(Debug, Clone, PartialEq)]
pub struct StressorMetric {
    pub stressor: String,
    pub bogo_ops: f64,
    /// Bogo operations per second of wall-clock time.
    pub bogo_ops_per_s: f64,
    pub wall_clock_s: f64,
}

/// What a `--yaml` file says.
#[derive(Debug, Clone, PartialEq)]
pub struct StressNgMetrics {
    pub version: Option<String>,
    pub cpus_online: Option<i64>,
    pub stressors: Vec<StressorMetric>,
}

/// Parses the file stress-ng writes with `--yaml FILE --metrics-brief`. A run
/// without metrics (a stressor that never started) gives an empty list.
pub fn parse_yaml(text: &str) -> Result<StressNgMetrics, StressNgError> {
    let docs = YamlLoader::load_from_str(text).map_err(StressNgError::Yaml)?;
    let doc = docs.first().ok_or(StressNgError::Empty)?;
    let info = &doc["system-info"];
    let version = match &info["stress-ng-version"] {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Real(s) => Some(s.clone()),
        _ => None,
    };
    let cpus_online = info["cpus-online"].as_i64();
    let mut stressors = Vec::new();
    if let Some(list) = doc["metrics"].as_vec() {
        for (index, m) in list.iter().enumerate() {
            let stressor = m["stressor"]
                .as_str()
                .ok_or_else(|| StressNgError::Metric { index, problem: "no stressor name".into() })?
                .to_string();
            let num = |key: &str| -> Result<f64, StressNgError> {
                number(&m[key])
                    .ok_or_else(|| StressNgError::Metric { index, problem: format!("{key} is not a number") })
            };
            stressors.push(StressorMetric {
                bogo_ops: num("bogo-ops")?,
                bogo_ops_per_s: num("bogo-ops-per-second-real-time")?,
                wall_clock_s: num("wall-clock-time")?,
                stressor,
            });
        }
    }
    Ok(StressNgMetrics { version, cpus_online, stressors })
}

fn number(y: &Yaml) -> Option<f64> {
    match y {
        Yaml::Integer(i) => Some(*i as f64),
        Yaml::Real(_) => y.as_f64(),
        _ => None,
    }
}

/// The lines of a stress-ng log that report a failed stressor or a failed
/// verification (`stress-ng: fail:  [pid] vm: detected memory error ...`).
pub fn failure_lines(log: &str) -> Vec<String> {
    log.lines().filter(|l| l.contains(" fail: ") || l.contains(" fail:\t")).map(|l| l.trim().to_string()).collect()
}

/// What stress-ng's exit status means (its man page, EXIT STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitMeaning {
    Success,
    /// A stressor failed, verification included: the host is not healthy.
    StressorFailed,
    /// stress-ng could not run as asked (options, resources, not
    /// implemented, killed, untrustworthy metrics): not a verdict.
    CouldNotRun,
}

pub fn exit_meaning(code: i32) -> ExitMeaning {
    match code {
        0 => ExitMeaning::Success,
        2 => ExitMeaning::StressorFailed,
        _ => ExitMeaning::CouldNotRun,
    }
}

/// Text for an exit status, from the man page.
pub fn exit_text(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "error in options or a fatal resource issue in the harness",
        2 => "one or more stressors failed",
        3 => "one or more stressors failed to initialise for lack of resources",
        4 => "one or more stressors are not implemented here",
        5 => "a stressor was killed by an unexpected signal",
        6 => "a stressor exited unexpectedly and timing metrics are missing",
        7 => "the bogo-ops metrics may be untrustworthy",
        _ => "unknown exit status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a real `stress-ng 0.15.06` run of the command kiln uses.
    const FIXTURE: &str = include_str!("../../tests/fixtures/stress-ng/0.15.06-cpu-vm.yaml");
    const FIXTURE_LOG: &str = include_str!("../../tests/fixtures/stress-ng/0.15.06-cpu-vm.log");

    #[test]
    fn parses_a_real_stress_ng_yaml() {
        let m = parse_yaml(FIXTURE).expect("fixture parses");
        assert_eq!(m.version.as_deref(), Some("0.15.06"));
        assert_eq!(m.cpus_online, Some(2));
        let names: Vec<_> = m.stressors.iter().map(|s| s.stressor.as_str()).collect();
        assert_eq!(names, ["cpu", "vm"]);
        for s in &m.stressors {
            assert!(s.bogo_ops > 0.0 && s.bogo_ops_per_s > 0.0 && s.wall_clock_s > 0.0, "{s:?}");
        }
        assert!(failure_lines(FIXTURE_LOG).is_empty(), "the captured run passed");
    }

    #[test]
    fn metric_without_numbers_is_an_error_naming_the_entry() {
        let text = "---\nsystem-info:\n  cpus-online: 4\nmetrics:\n  - stressor: cpu\n    bogo-ops: many\n...\n";
        let e = parse_yaml(text).expect_err("bad number");
        assert!(e.to_string().contains("entry 0") && e.to_string().contains("bogo-ops"), "{e}");
        assert!(parse_yaml("metrics: [").is_err());
        let none = parse_yaml("---\nsystem-info:\n  cpus: 2\n...\n").expect("no metrics");
        assert!(none.stressors.is_empty());
    }

    #[test]
    fn failure_lines_and_exit_codes() {
        let log = "stress-ng: info:  [1] dispatching hogs: 1 vm\n\
                   stress-ng: fail:  [2] vm: detected memory error, offset : 0x1000, value: 0x0\n\
                   stress-ng: error: [1] process 2 (stress-ng-vm) terminated with an error, exit status=2 (stressor failed)\n";
        assert_eq!(failure_lines(log).len(), 1);
        assert_eq!(exit_meaning(0), ExitMeaning::Success);
        assert_eq!(exit_meaning(2), ExitMeaning::StressorFailed);
        assert_eq!(exit_meaning(3), ExitMeaning::CouldNotRun);
        assert!(exit_text(5).contains("signal"));
    }
}
