//! The rendered forms read back by the grammar Slurm documents for them (topology.conf(5):
//! `Key=Value` words per line, `#` comments, hostlist expressions; topology.yaml(5): a list of
//! topologies, `topology` first, exactly one of `block`, `tree`, `flat`), and hostlists expanded
//! the way Slurm's parser expands them.

use super::*;
use yaml_rust2::{Yaml, YamlLoader};

fn domain(rack: &str, uuid: &str, clique: u32, nodes: &[&str]) -> VerifiedDomain {
    VerifiedDomain {
        name: slurm_name(&format!("{rack}-{}-{clique}", &uuid[..8])),
        cluster_uuid: uuid.into(),
        clique_id: clique,
        racks: vec![rack.into()],
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
    }
}

fn sample() -> Topology {
    let a: Vec<String> = (1..=18).filter(|i| ![3, 7].contains(i)).map(|i| format!("node{i:02}")).collect();
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    Topology {
        domains: vec![
            domain("r07", "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6", 32766, &a),
            domain("r08", "11111111-2222-4333-8444-555555555555", 1, &["b01", "b02", "b03", "b04"]),
            domain("r09", "99999999-2222-4333-8444-555555555555", 2, &["gpu-x", "gpu-y"]),
        ],
        left_out: Vec::new(),
    }
}

/// Slurm's hostlist expression expanded: `a[01-03,05],b` is a01 a02 a03 a05 b.
fn expand(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    let mut items = Vec::new();
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    for item in items {
        let Some(open) = item.find('[') else {
            out.push(item);
            continue;
        };
        let prefix = &item[..open];
        let inner = item[open + 1..].strip_suffix(']').expect("a closing bracket at the end");
        for range in inner.split(',') {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let width = a.len();
            let (a, b): (u64, u64) = (a.parse().expect("number"), b.parse().expect("number"));
            assert!(a <= b, "range {range} runs backwards");
            for n in a..=b {
                out.push(format!("{prefix}{n:0width$}"));
            }
        }
    }
    out
}

/// topology.conf: one `Key=Value` word list per line, keys case-insensitive, comments dropped.
fn conf_lines(text: &str) -> Vec<Vec<(String, String)>> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{w:?} is not Key=Value"));
                    assert!(!v.is_empty(), "{w}: empty value");
                    (k.to_ascii_lowercase(), v.to_string())
                })
                .collect()
        })
        .collect()
}

fn valid_name(name: &str) {
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{name:?} is not a plain Slurm name"
    );
}

#[test]
fn hostlists_compress_runs_and_expand_back_to_the_same_names() {
    let names: Vec<String> = ["node01", "node02", "node04", "node05", "node06", "node10", "login", "n7", "n8"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let list = hostlist(&names);
    assert_eq!(list, "node[01-02,04-06,10],login,n[7-8]");
    assert_eq!(expand(&list), names);
    assert_eq!(hostlist(&["tray-03".to_string()]), "tray-03");
    // Widths differ: node1 and node01 are two names, never one range.
    assert_eq!(hostlist(&["node1".to_string(), "node01".to_string()]), "node1,node01");
    let mut sorted = vec!["n10".to_string(), "n9".to_string(), "n1".to_string()];
    sorted.sort_by(|a, b| natural_cmp(a, b));
    assert_eq!(sorted, ["n1", "n9", "n10"]);
}

#[test]
fn block_sizes_start_at_the_smallest_domain_and_double_while_domains_exist() {
    let t = sample();
    assert_eq!(t.block_sizes(), [2, 4]);
    let one = Topology { domains: vec![t.domains[0].clone()], left_out: Vec::new() };
    assert_eq!(one.block_sizes(), [16]);
    let four = Topology { domains: vec![t.domains[1].clone(); 4], left_out: Vec::new() };
    assert_eq!(four.block_sizes(), [4, 8, 16]);
    assert!(Topology::default().block_sizes().is_empty());
    assert!(Topology::default().render(TopologyFormat::SlurmBlock).is_none());
}

#[test]
fn the_block_form_follows_topology_conf_grammar() {
    let t = sample();
    let text = t.render(TopologyFormat::SlurmBlock).expect("text");
    let lines = conf_lines(&text);
    let mut blocks = Vec::new();
    let mut sizes = None;
    for words in &lines {
        match words[0].0.as_str() {
            "blockname" => {
                assert_eq!(words.len(), 2, "{words:?}");
                assert_eq!(words[1].0, "nodes", "{words:?}");
                valid_name(&words[0].1);
                blocks.push((words[0].1.clone(), expand(&words[1].1)));
            }
            "blocksizes" => {
                assert!(sizes.is_none(), "BlockSizes twice");
                let list: Vec<usize> = words[0].1.split(',').map(|s| s.parse().expect("a size")).collect();
                sizes = Some(list);
            }
            other => panic!("{other} is not a topology/block keyword"),
        }
    }
    let names: Vec<&str> = blocks.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(names, ["r07-7c1e2f3a-32766", "r08-11111111-1", "r09-99999999-2"]);
    for (b, d) in blocks.iter().zip(&t.domains) {
        assert_eq!(b.1, d.nodes, "block {} holds its domain's nodes", b.0);
    }
    let sizes = sizes.expect("BlockSizes");
    let smallest = blocks.iter().map(|b| b.1.len()).min().expect("a block");
    assert!(sizes[0] <= smallest, "the base block size {} fits every block", sizes[0]);
    for pair in sizes.windows(2) {
        let ratio = pair[1] / pair[0];
        assert!(pair[1] % pair[0] == 0 && ratio.is_power_of_two() && ratio > 1, "{sizes:?}");
    }
}

#[test]
fn the_tree_form_connects_every_node_to_a_switch_and_one_switch_above_them() {
    let t = sample();
    let text = t.render(TopologyFormat::SlurmTree).expect("text");
    let mut leaves = Vec::new();
    let mut root = None;
    for words in conf_lines(&text) {
        assert_eq!(words[0].0, "switchname", "{words:?}");
        valid_name(&words[0].1);
        match words[1].0.as_str() {
            "nodes" => leaves.push((words[0].1.clone(), expand(&words[1].1))),
            "switches" => root = Some(expand(&words[1].1)),
            other => panic!("{other} is not a topology/tree keyword"),
        }
    }
    let all: Vec<String> = leaves.iter().flat_map(|l| l.1.clone()).collect();
    let want: Vec<String> = t.domains.iter().flat_map(|d| d.nodes.clone()).collect();
    assert_eq!(all, want);
    let leaf_names: Vec<String> = leaves.iter().map(|l| l.0.clone()).collect();
    assert_eq!(root.expect("a top switch"), leaf_names);
    let one = Topology { domains: vec![t.domains[0].clone()], left_out: Vec::new() };
    let single = one.render(TopologyFormat::SlurmTree).expect("text");
    assert!(!single.contains("Switches="), "one domain needs no top switch:\n{single}");
}

#[test]
fn the_yaml_form_follows_topology_yaml_grammar() {
    let t = sample();
    let text = t.render(TopologyFormat::SlurmYaml).expect("text");
    let docs = YamlLoader::load_from_str(&text).expect("YAML");
    let Yaml::Array(topologies) = &docs[0] else { panic!("a list of topologies:\n{text}") };
    assert_eq!(topologies.len(), 1);
    let Yaml::Hash(topo) = &topologies[0] else { panic!("a topology is a mapping") };
    let keys: Vec<&str> = topo.keys().filter_map(Yaml::as_str).collect();
    assert_eq!(keys[0], "topology", "the name comes first");
    assert_eq!(topo[&Yaml::from_str("cluster_default")].as_bool(), Some(true));
    let kinds = ["block", "tree", "flat"].iter().filter(|k| topo.contains_key(&Yaml::from_str(k))).count();
    assert_eq!(kinds, 1, "exactly one topology type");
    let block = &topo[&Yaml::from_str("block")];
    let sizes: Vec<i64> = block["block_sizes"].as_vec().expect("block_sizes").iter().filter_map(Yaml::as_i64).collect();
    assert_eq!(sizes, [2, 4]);
    let blocks = block["blocks"].as_vec().expect("blocks");
    assert_eq!(blocks.len(), t.domains.len());
    for (b, d) in blocks.iter().zip(&t.domains) {
        let Yaml::Hash(h) = b else { panic!("a block is a mapping") };
        assert_eq!(h.keys().next().and_then(Yaml::as_str), Some("block"));
        assert_eq!(b["block"].as_str(), Some(d.name.as_str()));
        assert_eq!(expand(b["nodes"].as_str().expect("nodes")), d.nodes);
    }
}

#[test]
fn k8s_labels_name_each_node_with_its_clique() {
    let t = sample();
    let text = t.render(TopologyFormat::K8sLabels).expect("text");
    let labels: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(labels.len(), 16 + 4 + 2);
    assert_eq!(
        labels[0],
        "kubectl label node node01 --overwrite nvidia.com/gpu.clique=7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6.32766"
    );
    // A label value: at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric.
    for l in &labels {
        let value = l.rsplit('=').next().expect("value");
        assert!(value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{l}");
    }
}

#[test]
fn rendering_is_stable() {
    let t = sample();
    for f in
        [TopologyFormat::SlurmBlock, TopologyFormat::SlurmYaml, TopologyFormat::SlurmTree, TopologyFormat::K8sLabels]
    {
        assert_eq!(t.render(f), t.clone().render(f));
    }
    insta::assert_snapshot!(t.render(TopologyFormat::SlurmBlock).expect("text"));
}
