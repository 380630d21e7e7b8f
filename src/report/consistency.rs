//! Rack-level consistency: the fleet's rack checks over the nodes' latest recorded models, and
//! burn-in figures that stray from the rack's median.

use std::collections::BTreeMap;

use super::collective_section::tray_all_reduce_busbw;
use super::rack_model::{Outlier, RackNodeReport};
use crate::checks::Finding;
use crate::fleet::rack_checks::{rack_findings, RackMember};
use crate::model::Node;

/// A node whose figure is this much worse than the rack median is an outlier.
/// Ten percent: bigger than run-to-run noise of GEMM and bandwidth tests on
/// one healthy node (a few percent), smaller than a throttling GPU or a link
/// trained down (tens of percent).
pub const OUTLIER_PCT: f64 = 10.0;
/// Fewer nodes than this make no median worth comparing against.
pub const OUTLIER_MIN_NODES: usize = 3;

/// `fleet::rack_checks` over `(name, platform, latest model)`, with the
/// capabilities of the built-in platform specs (a test keeps them loadable).
pub fn rack_consistency(models: &[(String, Option<String>, Node)], rack_platform: Option<&str>) -> Vec<Finding> {
    let members: Vec<RackMember<'_>> = models
        .iter()
        .map(|(name, platform, node)| RackMember {
            name,
            platform: platform.as_deref().or(rack_platform),
            node,
            tray: None,
        })
        .collect();
    let specs = crate::checks::spec_load::load_builtin().unwrap_or_default();
    rack_findings(&members, &specs)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] })
}

/// The outlier figure of a tray's own all-reduce in the rack collective.
pub const TRAY_ALL_REDUCE: &str = "collective_tray_all_reduce_busbw";

/// A figure's unit, whether higher is better, and each node's worst value.
type FigureValues<'a> = (&'a str, bool, Vec<(&'a str, f64)>);

/// Per figure name, each node's worst value (lowest where higher is better,
/// highest otherwise) against the median of those worst values; a node more
/// than `OUTLIER_PCT` worse is an outlier.
pub fn outliers(nodes: &[RackNodeReport]) -> Vec<Outlier> {
    let mut by_figure: BTreeMap<&str, FigureValues<'_>> = BTreeMap::new();
    for n in nodes {
        let mut worst: BTreeMap<&str, (&str, bool, f64)> = BTreeMap::new();
        for f in n.burnin.figures.iter().filter(|f| f.value.is_finite()) {
            let e = worst.entry(&f.name).or_insert((&f.unit, f.higher_is_better, f.value));
            e.2 = if f.higher_is_better { e.2.min(f.value) } else { e.2.max(f.value) };
        }
        // The tray's own GPUs alone in its newest rack collective: a slow tray's NVLink shows here.
        let tray = n.record.as_ref().and_then(|r| r.collective.as_ref()).and_then(tray_all_reduce_busbw);
        if let Some(v) = tray.filter(|v| v.is_finite()) {
            worst.insert(TRAY_ALL_REDUCE, ("GB/s", true, v));
        }
        for (name, (unit, hib, v)) in worst {
            by_figure.entry(name).or_insert((unit, hib, Vec::new())).2.push((&n.name, v));
        }
    }
    let mut out = Vec::new();
    for (figure, (unit, higher_is_better, values)) in by_figure {
        if values.len() < OUTLIER_MIN_NODES {
            continue;
        }
        let mut all: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
        let Some(median) = median(&mut all) else { continue };
        if median == 0.0 {
            continue;
        }
        for (node, value) in values {
            let pct = (value - median) / median.abs() * 100.0;
            let worse = if higher_is_better { -pct } else { pct };
            if worse > OUTLIER_PCT {
                out.push(Outlier {
                    node: node.to_string(),
                    figure: figure.to_string(),
                    unit: unit.to_string(),
                    value,
                    median,
                    deviation_pct: (pct * 10.0).round() / 10.0,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::burnin_view::{BurninFigure, BurninView};

    fn node(name: &str, tflops: &[f64], temp: f64) -> RackNodeReport {
        let mut figures: Vec<BurninFigure> = tflops
            .iter()
            .enumerate()
            .map(|(i, v)| BurninFigure {
                name: "gemm_tflops".into(),
                gpu: Some(i as u32),
                peer_gpu: None,
                value: *v,
                unit: "TFLOP/s".into(),
                threshold: Some(700.0),
                higher_is_better: true,
            })
            .collect();
        figures.push(BurninFigure {
            name: "max_temperature_c".into(),
            gpu: None,
            peer_gpu: None,
            value: temp,
            unit: "C".into(),
            threshold: None,
            higher_is_better: false,
        });
        RackNodeReport {
            name: name.into(),
            rack: None,
            slot: None,
            tray: None,
            record: None,
            events: Vec::new(),
            burnin: BurninView { figures, ..Default::default() },
            locate: None,
        }
    }

    #[test]
    fn the_worst_gpu_against_the_median_flags_only_real_strays() {
        let nodes = vec![
            node("a", &[790.0, 795.0], 70.0),
            node("b", &[788.0, 792.0], 71.0),
            node("c", &[640.0, 793.0], 72.0), // one slow GPU
            node("d", &[785.0, 790.0], 84.0), // runs hot
        ];
        let found = outliers(&nodes);
        let names: Vec<(&str, &str)> = found.iter().map(|o| (o.node.as_str(), o.figure.as_str())).collect();
        assert_eq!(names, vec![("c", "gemm_tflops"), ("d", "max_temperature_c")]);
        assert_eq!(found[0].value, 640.0);
        assert_eq!(found[0].median, 786.5);
        assert!(found[0].deviation_pct < -18.0, "{found:?}");
    }

    /// A node whose newest rack collective measured its own GPUs alone at `busbw`.
    fn tray(name: &str, busbw: f64) -> RackNodeReport {
        use crate::report::collective_section::{CollectiveRow, CollectiveSection};
        let row = |op: &str, bytes: f64, busbw: f64| CollectiveRow {
            op: op.into(),
            bytes: Some(bytes),
            time_us: None,
            algbw_gbps: None,
            busbw_gbps: Some(busbw),
            wrong_words: Some(0.0),
        };
        let collective = CollectiveSection {
            run_id: crate::inventory::RunId(1),
            rack_run_id: 1,
            rank: 0,
            status: "pass".into(),
            reason: None,
            verdict: None,
            started_at: "2026-12-03T06:00:00Z".into(),
            // The domain's figure is the same for every tray (all wait for the slowest); the
            // tray's own figure at its largest size is what differs.
            rows: vec![
                row("all_reduce", 8589934592.0, 700.0),
                row("all_reduce (this tray alone)", 67108864.0, 100.0),
                row("all_reduce (this tray alone)", 8589934592.0, busbw),
            ],
            gpus_sampled: 0,
            samples: 0,
            peak_power_w: None,
            peak_temperature_c: None,
            telemetry_note: None,
        };
        let record = crate::report::NodeReport {
            hostname: name.into(),
            rack: Some("r1".into()),
            platform: Some("gb200-nvl72-tray".into()),
            serial: None,
            state: crate::lifecycle::LifecycleState::BurnedIn,
            first_seen: String::new(),
            last_seen: String::new(),
            last_run: None,
            components: Vec::new(),
            findings: Default::default(),
            changes: None,
            burnin: None,
            collective: Some(collective),
        };
        RackNodeReport { record: Some(record), ..node(name, &[790.0], 70.0) }
    }

    #[test]
    fn a_tray_slow_alone_in_the_rack_collective_is_an_outlier() {
        let found = outliers(&[tray("t1", 632.0), tray("t2", 630.0), tray("t3", 420.0), tray("t4", 628.0)]);
        let names: Vec<(&str, &str)> = found.iter().map(|o| (o.node.as_str(), o.figure.as_str())).collect();
        assert_eq!(names, [("t3", TRAY_ALL_REDUCE)], "{found:?}");
        assert_eq!((found[0].value, found[0].unit.as_str()), (420.0, "GB/s"));
    }

    #[test]
    fn too_few_nodes_compare_nothing() {
        assert!(outliers(&[node("a", &[790.0], 70.0), node("b", &[100.0], 99.0)]).is_empty());
    }
}
