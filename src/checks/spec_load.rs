//! Loading specs: parse one file, a directory of them, or the built-in set.

use std::path::{Path, PathBuf};

use super::builtin;
use super::platform::Platform;
use super::spec_error::{line_column, span_of, SpecError, SpecIssue};
use super::spec_validate;
use crate::toml_error::{locate, Located};

/// A parsed spec and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSpec {
    pub platform: Platform,
    /// The file it was read from; for built-in specs `built-in/<file>`.
    pub origin: PathBuf,
}

/// Parses and checks one spec. `file` is only used to name it in errors.
pub fn parse_spec(text: &str, file: &Path) -> Result<Platform, SpecError> {
    let platform: Platform = toml::from_str(text).map_err(|e| {
        let Located { line, column, field, message } = locate(text, &e);
        SpecError::Parse { file: file.to_path_buf(), line, column, field, message }
    })?;
    let issues: Vec<SpecIssue> = spec_validate::check(&platform)
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = span_of(text, &path).map(|s| line_column(text, s.start)).unwrap_or((0, 0));
            SpecIssue { line, column, field: path.to_string(), message }
        })
        .collect();
    if issues.is_empty() {
        Ok(platform)
    } else {
        Err(SpecError::Invalid { file: file.to_path_buf(), issues })
    }
}

/// Reads and parses one spec file.
pub fn load_file(path: &Path) -> Result<LoadedSpec, SpecError> {
    let text =
        crate::input::read_to_string(path, crate::input::Input::Spec).map_err(
            |source| match crate::input::NotUtf8::of(&source) {
                Some(at) => SpecError::NotUtf8 { file: path.to_path_buf(), at },
                None => SpecError::Read { file: path.to_path_buf(), source },
            },
        )?;
    Ok(LoadedSpec { platform: parse_spec(&text, path)?, origin: path.to_path_buf() })
}

/// Every `platforms/*.toml` under a checks directory, sorted by file name.
/// Fails on the first malformed file: a half-loaded set would silently detect
/// the wrong platform.
pub fn load_dir(checks_dir: &Path) -> Result<Vec<LoadedSpec>, SpecError> {
    let dir = checks_dir.join("platforms");
    let files = crate::input::toml_files(&dir).map_err(|source| SpecError::ReadDir { dir: dir.clone(), source })?;
    if files.is_empty() {
        return Err(SpecError::EmptyDir { dir: checks_dir.to_path_buf() });
    }
    let specs = files.iter().map(|f| load_file(f)).collect::<Result<Vec<_>, _>>()?;
    check_unique(&specs)?;
    Ok(specs)
}

/// The specs built into the binary.
pub fn load_builtin() -> Result<Vec<LoadedSpec>, SpecError> {
    let specs = builtin::PLATFORMS
        .iter()
        .map(|(file, text)| {
            let origin = Path::new("built-in").join(file);
            Ok(LoadedSpec { platform: parse_spec(text, &origin)?, origin })
        })
        .collect::<Result<Vec<_>, SpecError>>()?;
    check_unique(&specs)?;
    Ok(specs)
}

/// The built-in specs, or those in `checks_dir` when given.
pub fn load_set(checks_dir: Option<&Path>) -> Result<Vec<LoadedSpec>, SpecError> {
    match checks_dir {
        Some(dir) => load_dir(dir),
        None => load_builtin(),
    }
}

/// Names are unique in a set, and at most one spec is the fallback.
fn check_unique(specs: &[LoadedSpec]) -> Result<(), SpecError> {
    let mut fallbacks = specs.iter().filter(|s| s.platform.fallback);
    if let (Some(first), Some(second)) = (fallbacks.next(), fallbacks.next()) {
        return Err(SpecError::TwoFallbacks { first: first.origin.clone(), second: second.origin.clone() });
    }
    for (i, a) in specs.iter().enumerate() {
        if let Some(b) = specs[i + 1..].iter().find(|b| b.platform.name == a.platform.name) {
            return Err(SpecError::DuplicateName {
                name: a.platform.name.clone(),
                first: a.origin.clone(),
                second: b.origin.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "t"
description = "test"

[[devices]]
role = "gpu"
ids = ["10de:2901"]
count = 2
numa = [0, 1]
[gpu_health]
"#;

    fn parse(text: &str) -> Result<Platform, SpecError> {
        parse_spec(text, Path::new("specs/t.toml"))
    }

    /// (line, field, message) of a parse or validation error.
    fn located(err: SpecError) -> (usize, String, String) {
        match err {
            SpecError::Parse { line, field, message, .. } => (line, field, message),
            SpecError::Invalid { issues, .. } => {
                let i = issues.into_iter().next().expect("at least one issue");
                (i.line, i.field, i.message)
            }
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn every_builtin_spec_parses() {
        let specs = load_builtin().expect("built-in specs parse");
        let names: Vec<&str> = specs.iter().map(|s| s.platform.name.as_str()).collect();
        assert_eq!(names, ["gb200-nvl72-tray", "generic", "h100-sxm", "hgx-b200"]);
    }

    #[test]
    fn every_file_in_checks_platforms_is_built_in() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks");
        let from_dir = load_dir(&dir).expect("checks/platforms parses");
        let builtin = load_builtin().expect("built-in specs parse");
        let a: Vec<_> = from_dir.iter().map(|s| &s.platform).collect();
        let b: Vec<_> = builtin.iter().map(|s| &s.platform).collect();
        assert_eq!(a, b, "build.rs must embed every file in checks/platforms");
    }

    #[test]
    fn a_sound_spec_parses() {
        let p = parse(GOOD).expect("valid");
        assert_eq!(p.devices[0].numa.as_deref(), Some(&[0, 1][..]));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = GOOD.replace("count = 2", "count = 2\ncolour = \"green\"");
        let err = parse(&text).expect_err("unknown field");
        let shown = err.to_string();
        assert!(shown.starts_with("specs/t.toml:8:1: field `devices[0].colour`"), "{shown}");
        let (line, field, message) = located(err);
        assert_eq!(line, 8);
        assert_eq!(field, "devices[0].colour");
        assert!(message.contains("unknown field `colour`"), "{message}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = GOOD.replace("count = 2", "count = \"two\"");
        let (line, field, message) = located(parse(&text).expect_err("wrong type"));
        assert_eq!((line, field.as_str()), (7, "devices[0].count"));
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn bad_pci_id_names_the_entry() {
        let text = GOOD.replace("10de:2901", "10de:zzzz");
        let (line, field, message) = located(parse(&text).expect_err("bad id"));
        assert_eq!((line, field.as_str()), (6, "devices[0].ids[0]"));
        assert!(message.contains("10de:zzzz"), "{message}");
    }

    #[test]
    fn bad_pci_id_in_a_long_list_names_its_line() {
        let text = GOOD.replace("ids = [\"10de:2901\"]", "ids = [\n  \"10de:2901\",\n  \"10de:29x1\",\n]");
        let (line, field, _) = located(parse(&text).expect_err("bad id"));
        assert_eq!((line, field.as_str()), (8, "devices[0].ids[1]"));
    }

    #[test]
    fn negative_count_is_rejected() {
        let text = GOOD.replace("count = 2", "count = -1");
        let (line, field, _) = located(parse(&text).expect_err("negative"));
        assert_eq!((line, field.as_str()), (7, "devices[0].count"));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let text = GOOD.replace("role = \"gpu\"", "role = \"gpu");
        let (line, _, _) = located(parse(&text).expect_err("unterminated string"));
        assert_eq!(line, 5);
    }

    #[test]
    fn missing_required_field_is_reported() {
        let text = GOOD.replace("description = \"test\"\n", "");
        let (_, _, message) = located(parse(&text).expect_err("no description"));
        assert!(message.contains("description"), "{message}");
    }

    #[test]
    fn numa_list_must_match_count() {
        let text = GOOD.replace("numa = [0, 1]", "numa = [0, 1, 1]");
        let (line, field, message) = located(parse(&text).expect_err("numa length"));
        assert_eq!((line, field.as_str()), (8, "devices[0].numa"));
        assert!(message.contains("3 nodes but count is 2"), "{message}");
    }

    #[test]
    fn empty_name_and_bad_width_are_all_reported() {
        let text = GOOD.replace("name = \"t\"", "name = \"\"") + "\n[devices.link]\nwidth = 3\n";
        let err = parse(&text).expect_err("two issues");
        let SpecError::Invalid { issues, .. } = err else { panic!("expected Invalid") };
        let fields: Vec<(usize, &str)> = issues.iter().map(|i| (i.line, i.field.as_str())).collect();
        assert_eq!(fields, [(1, "name"), (12, "devices[0].link.width")]);
    }

    #[test]
    fn count_and_min_count_are_exclusive() {
        let text = GOOD.replace("count = 2", "count = 2\nmin_count = 1");
        let (_, field, _) = located(parse(&text).expect_err("both"));
        assert_eq!(field, "devices[0].min_count");
    }

    const BURNIN: &str = r#"
[burnin.gemm]
outlier_fraction = 0.9

[burnin.gemm.bf16]
expected = 1745.0
min = 1309.0
reason = "source"

[burnin.memtest]
min_coverage = 0.9

[burnin.telemetry]
nvlink_error_budget = 0
pcie_replays_per_minute = 30.7
reason = "source"
"#;

    #[test]
    fn a_burnin_section_parses_into_the_spec() {
        let p = parse(&format!("{GOOD}{BURNIN}")).expect("valid");
        let b = p.burnin.expect("[burnin]");
        assert_eq!(b.gemm.bf16.and_then(|l| l.min), Some(1309.0));
        assert_eq!(b.telemetry.pcie_replays_per_minute, 30.7);
    }

    #[test]
    fn a_malformed_burnin_section_names_file_line_and_field() {
        let typo = format!("{GOOD}{BURNIN}").replace("min_coverage", "min_coverge");
        let err = parse(&typo).expect_err("unknown field");
        assert!(err.to_string().starts_with("specs/t.toml:20:1: field `burnin.memtest.min_coverge`"), "{err}");
        let (line, field, message) = located(
            parse(&format!("{GOOD}{BURNIN}").replace("= 0.9\n\n[burnin.gemm.bf16]", "= 9.0\n\n[burnin.gemm.bf16]"))
                .expect_err("range"),
        );
        assert_eq!((line, field.as_str()), (12, "burnin.gemm.outlier_fraction"));
        assert!(message.contains("between 0 and 1"), "{message}");
        let inverted = format!("{GOOD}{BURNIN}").replace("min = 1309.0", "min = 1900.0");
        let (line, field, message) = located(parse(&inverted).expect_err("min above expected"));
        assert_eq!((line, field.as_str()), (16, "burnin.gemm.bf16.min"));
        assert!(message.contains("above expected"), "{message}");
        let no_reason = format!("{GOOD}{BURNIN}").replacen("reason = \"source\"", "reason = \" \"", 1);
        let (line, field, _) = located(parse(&no_reason).expect_err("empty reason"));
        assert_eq!((line, field.as_str()), (17, "burnin.gemm.bf16.reason"));
    }

    const COLLECTIVE: &str = r#"
[burnin.collective]
sizes_mib = [64, 8192]
iterations = 20
warmup = 5
outlier_fraction = 0.9

[[burnin.collective.all_reduce]]
gpus = 4
expected = 680.0
min = 510.0
reason = "one tray"

[[burnin.collective.all_reduce]]
gpus = 72
expected = 840.0
min = 630.0
reason = "one rack"
"#;

    #[test]
    fn collective_limits_are_a_list_by_gpu_count_or_the_single_table_they_were() {
        use crate::checks::burnin_spec::Chosen;
        use crate::checks::collective_op::Op;
        let p = parse(&format!("{GOOD}{BURNIN}{COLLECTIVE}")).expect("valid");
        let c = p.burnin.and_then(|b| b.collective).expect("[burnin.collective]");
        assert_eq!(c.all_reduce.iter().map(|l| l.gpus).collect::<Vec<_>>(), [Some(4), Some(72)]);
        assert!(matches!(c.limit(Op::AllReduce, 36), Chosen::Limit(l) if l.gpus == Some(4)));
        assert_eq!(c.limit(Op::AllGather, 72), Chosen::NoLimit);
        // The form specs had first: one table, for any GPU count.
        let old = format!(
            "{GOOD}{BURNIN}\n[burnin.collective]\nsizes_mib = [64]\niterations = 20\nwarmup = 5\n\
             outlier_fraction = 0.9\n\n[burnin.collective.all_reduce]\nexpected = 840.0\nmin = 630.0\n\
             reason = \"one rack\"\n"
        );
        let c = parse(&old).expect("the single table still loads").burnin.and_then(|b| b.collective).expect("c");
        assert_eq!(c.all_reduce.len(), 1);
        assert!(matches!(c.limit(Op::AllReduce, 2), Chosen::Limit(l) if l.gpus.is_none() && l.min == Some(630.0)));
        // ... and its problems are placed on its own lines.
        let inverted = old.replace("min = 630.0", "min = 900.0");
        let (line, field, message) = located(parse(&inverted).expect_err("inverted"));
        let min_line = inverted.lines().position(|l| l == "min = 900.0").expect("min line") + 1;
        assert_eq!((line, field.as_str()), (min_line, "burnin.collective.all_reduce[0].min"));
        assert!(message.contains("above expected"), "{message}");
    }

    #[test]
    fn a_malformed_collective_limit_names_its_entry_and_field() {
        let text = format!("{GOOD}{BURNIN}{COLLECTIVE}");
        let line_of = |text: &str, needle: &str| text.lines().position(|l| l.starts_with(needle)).expect(needle) + 1;
        // A typo in the second entry: serde's own message, on the key's line.
        let typo = text.replacen("gpus = 72", "gpu = 72", 1);
        let (line, field, message) = located(parse(&typo).expect_err("unknown field"));
        assert_eq!((line, field.as_str()), (line_of(&typo, "gpu = 72"), "burnin.collective.all_reduce[1].gpu"));
        assert!(message.contains("unknown field `gpu`"), "{message}");
        // A value of the wrong type.
        let (_, field, message) = located(parse(&text.replace("gpus = 4", "gpus = \"four\"")).expect_err("type"));
        assert_eq!(field, "burnin.collective.all_reduce[0].gpus");
        assert!(message.contains("invalid type"), "{message}");
        // gpus 0, and two entries for one size.
        let (line, field, message) = located(parse(&text.replace("gpus = 4", "gpus = 0")).expect_err("zero"));
        assert_eq!((line, field.as_str()), (line_of(&text, "gpus = 4"), "burnin.collective.all_reduce[0].gpus"));
        assert!(message.contains("1 or more"), "{message}");
        let twice = text.replace("gpus = 72", "gpus = 4");
        let (line, field, message) = located(parse(&twice).expect_err("duplicate"));
        assert_eq!((line, field.as_str()), (line_of(&text, "gpus = 72"), "burnin.collective.all_reduce[1].gpus"));
        assert!(message.contains("a second entry with gpus = 4"), "{message}");
    }

    #[test]
    fn an_nvlink_domain_must_split_evenly_into_trays_of_the_nodes_gpus() {
        // GOOD expects 2 GPUs a node: 36 trays of 2 is a 72-GPU domain.
        let ok = format!("{GOOD}\n[nvlink_domain]\ngpus = 72\ntrays = 36\n[nvlink]\nlinks_per_gpu = 2\n");
        let d = parse(&ok).expect("valid").nvlink_domain.expect("domain");
        assert_eq!(d.gpus_per_tray(), 2);
        let (line, field, message) = located(parse(&ok.replace("trays = 36", "trays = 18")).expect_err("4 a tray"));
        assert_eq!((line, field.as_str()), (12, "nvlink_domain.gpus"));
        assert!(message.contains("4 per tray") && message.contains("expects 2"), "{message}");
        let (_, field, _) = located(parse(&ok.replace("trays = 36", "trays = 7")).expect_err("uneven"));
        assert_eq!(field, "nvlink_domain.gpus");
        let (_, field, _) = located(parse(&ok.replace("trays = 36", "trays = 1")).expect_err("one tray"));
        assert_eq!(field, "nvlink_domain.trays");
    }

    #[test]
    fn an_nvlink_speed_of_zero_or_a_negative_budget_names_file_line_and_field() {
        let base = format!(
            "{GOOD}\n[nvlink]\nlinks_per_gpu = 18\nmin_speed_mbps = 53125\n[nvlink.errors]\ncrc_flit_max = 100\n"
        );
        let nv = parse(&base).expect("valid").nvlink.expect("nvlink");
        assert_eq!((nv.min_speed_mbps, nv.errors.crc_flit_max), (Some(53125), Some(100)));
        let line_of = |key: &str| base.lines().position(|l| l.starts_with(key)).expect("line") + 1;
        let (speed_line, budget_line) = (line_of("min_speed_mbps"), line_of("crc_flit_max"));
        let err = parse(&base.replace("= 53125", "= 0")).expect_err("speed 0");
        assert!(err.to_string().contains(&format!("specs/t.toml:{speed_line}")), "{err}");
        let (line, field, _) = located(err);
        assert_eq!((line, field.as_str()), (speed_line, "nvlink.min_speed_mbps"));
        let err = parse(&base.replace("= 100", "= -5")).expect_err("negative budget");
        assert!(err.to_string().contains(&format!("specs/t.toml:{budget_line}")), "{err}");
        let (line, field, _) = located(err);
        assert_eq!((line, field.as_str()), (budget_line, "nvlink.errors.crc_flit_max"));
    }

    #[test]
    fn a_built_in_spec_cut_short_is_refused_unless_it_still_judges_its_platform() {
        let mut refused = 0;
        for (file, text) in builtin::PLATFORMS {
            let full = parse(text).expect("the whole file is a spec");
            for (end, _) in text.match_indices('\n') {
                let Ok(cut) = parse(&text[..=end]) else {
                    refused += 1;
                    continue;
                };
                // Dropping [burnin] or trailing optional budgets leaves a usable spec;
                // losing detection, a device group, NVLink, fabric or the domain does not.
                let line = text[..end].matches('\n').count() + 1;
                assert_eq!(
                    (&cut.detect, &cut.devices, &cut.nvlink, &cut.fabric, &cut.nvlink_domain),
                    (&full.detect, &full.devices, &full.nvlink, &full.fabric, &full.nvlink_domain),
                    "{file} cut after line {line} passes but judges less of its platform"
                );
                assert!(!full.expects_gpus() || cut.gpu_health.is_some(), "{file} cut after line {line}");
            }
        }
        assert!(refused > 0);
    }

    #[test]
    fn an_incomplete_spec_names_what_is_missing() {
        let head = "name = \"t\"\ndescription = \"test\"\n";
        let (_, field, message) = located(parse(head).expect_err("judges nothing"));
        assert_eq!(field, "description");
        assert!(message.contains("judges nothing"), "{message}");
        let detects =
            format!("{head}[match]\narchitecture = \"x86_64\"\n[[match.pci]]\nids = [\"10de:2901\"]\n[aer]\n");
        let (line, field, message) = located(parse(&detects).expect_err("counts nothing it detects"));
        assert_eq!((line, field.as_str()), (6, "match.pci[0].ids[0]"));
        assert!(message.contains("10de:2901 detects this platform, but no [[devices]] group counts it"), "{message}");
        let no_health = GOOD.replace("[gpu_health]\n", "");
        let (line, field, message) = located(parse(&no_health).expect_err("GPUs without memory health"));
        assert_eq!((line, field.as_str()), (5, "devices[0].role"));
        assert!(message.contains("add [gpu_health]"), "{message}");
        let links = format!("{head}[aer]\n[nvlink]\nlinks_per_gpu = 18\n");
        let (_, field, message) = located(parse(&links).expect_err("NVLink without GPUs"));
        assert_eq!(
            (field.as_str(), message.as_str()),
            ("nvlink", "[nvlink] judges GPUs, but [[devices]] expects none")
        );
        let domain = format!("{GOOD}[nvlink_domain]\ngpus = 4\ntrays = 2\n");
        let (_, field, message) = located(parse(&domain).expect_err("a domain without NVLink rules"));
        assert_eq!(field, "nvlink_domain");
        assert!(message.ends_with("add [nvlink]"), "{message}");
        parse(&format!("{domain}[nvlink]\nlinks_per_gpu = 2\n")).expect("complete");
        parse(builtin::PLATFORMS.iter().find(|(f, _)| *f == "generic.toml").expect("generic").1).expect("minimal");
    }

    #[test]
    fn a_spec_that_is_not_utf8_names_line_and_column_of_the_first_bad_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("latin1.toml");
        std::fs::write(&file, b"name = \"t\"\ndescription = \"Stra\xdfe\"\n").expect("write");
        let err = load_file(&file).expect_err("not UTF-8");
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("{}:2:20: not UTF-8 text", file.display())), "{shown}");
        assert!(matches!(err, SpecError::NotUtf8 { at: crate::input::NotUtf8 { line: 2, column: 20, byte: 30 }, .. }));
    }

    #[test]
    fn the_fallback_has_no_match_rules_and_a_set_has_at_most_one() {
        let matched = format!("{GOOD}\n[match]\narchitecture = \"x86_64\"\n")
            .replace("description", "fallback = true\ndescription");
        let (line, field, _) = located(parse(&matched).expect_err("a fallback that matches"));
        assert_eq!((line, field.as_str()), (2, "fallback"));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("platforms")).expect("mkdir");
        for (f, name) in [("a.toml", "a"), ("b.toml", "b")] {
            let text = GOOD.replace("name = \"t\"", &format!("name = \"{name}\"\nfallback = true"));
            std::fs::write(dir.path().join("platforms").join(f), text).expect("write");
        }
        let err = load_dir(dir.path()).expect_err("two fallbacks");
        assert!(matches!(err, SpecError::TwoFallbacks { .. }), "{err}");
    }

    #[test]
    fn duplicate_names_in_a_directory_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("platforms")).expect("mkdir");
        for f in ["a.toml", "b.toml"] {
            std::fs::write(dir.path().join("platforms").join(f), GOOD).expect("write");
        }
        assert!(matches!(load_dir(dir.path()), Err(SpecError::DuplicateName { .. })));
    }

    #[test]
    fn a_missing_directory_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(load_dir(&dir.path().join("nope")), Err(SpecError::ReadDir { .. })));
    }
}
