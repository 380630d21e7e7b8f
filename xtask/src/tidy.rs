//! `cargo xtask tidy` and its tests: the architecture's boundaries, checked by reading the
//! source tree as text, so that crossing one fails `cargo xtask test` (ARCHITECTURE.md names
//! each rule beside its invariant).
//!
//! The rules:
//! - `nvml`: the NVML crates (`nvml_wrapper`, `nvml_wrapper_sys`) are used only under `src/hw/`,
//!   and `cudarc` only under `src/hw/` and burn-in's kernel layer (`KERNEL_LAYER`).
//! - `sql`: `rusqlite` only under `src/inventory/`.
//! - `platform-names`: no platform name (`hgx-b200`, `gb200`, `nvl72`, `h100`, `b200`, ...) in a
//!   string literal (and so in a `match` on one) of `src/` code other than tests and the
//!   fixture builder (`src/hw/fixture/`): platforms are data in `checks/`, not code.
//! - `stderr`: no `eprintln!`, `eprint!` or `stderr()` in `src/cmd/`: commands return their
//!   outcome and say notices through `kiln::notice`; only `main` and the notice sink write stderr.
//! - `doc-line`: every Rust file (`src`, `tests`, `xtask`, `examples`) opens with a `//!` line.
//!
//! A file that breaks a rule and may (until it is fixed, or because it must) is listed in
//! `KNOWN` with why; the check fails on any other file that breaks the rule, and on a listed
//! file that no longer does, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::Context;

/// Burn-in's kernel layer: the CUDA driver, NVRTC and cuBLASLt wrapper and the tests that run
/// kernels through it. Nothing else in `src/burnin/` may name `cudarc`.
pub const KERNEL_LAYER: &[&str] = &[
    "src/burnin/cuda.rs",
    "src/burnin/gemm.rs",
    "src/burnin/hbm.rs",
    "src/burnin/host_link.rs",
    "src/burnin/memtest.rs",
    "src/burnin/p2p.rs",
];

/// Names of platforms (lowercase); a string literal containing one names a platform.
pub const PLATFORM_NAMES: &[&str] = &[
    "hgx-b200", "hgx-h100", "hgx", "dgx", "gb200", "gb300", "gh200", "nvl72", "nvl36", "h100", "h200", "b200", "b300",
];

/// Files that break a rule, each with why it may. The check fails when a file breaks a rule
/// and is not listed, and when a listed file is clean again: delete its line then.
pub const KNOWN: &[(Rule, &str, &str)] = &[
    // Deliberate, not awaiting a fix: the test plays another program against the inventory file
    // (writes a foreign SQLite database, holds a connection open so the log is not checkpointed,
    // reads `user_version` and `journal_mode` from outside), which only SQL can do.
    (Rule::Sql, "tests/inventory_files.rs", "plays another program on the inventory file"),
];

/// One boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Nvml,
    Sql,
    PlatformNames,
    Stderr,
    DocLine,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Nvml => "nvml",
            Rule::Sql => "sql",
            Rule::PlatformNames => "platform-names",
            Rule::Stderr => "stderr",
            Rule::DocLine => "doc-line",
        })
    }
}

/// A rule broken at a place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    pub rule: Rule,
    pub path: String,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: [{}] {}", self.path, self.line, self.rule, self.what)
    }
}

/// What the check found against the `KNOWN` list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Broken rules in files the list does not name.
    pub new: Vec<Violation>,
    /// Listed (rule, file) pairs that break the rule no more.
    pub fixed: Vec<(Rule, String)>,
}

impl Outcome {
    pub fn is_clean(&self) -> bool {
        self.new.is_empty() && self.fixed.is_empty()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.new {
            writeln!(f, "{v}")?;
        }
        for (rule, path) in &self.fixed {
            writeln!(f, "{path}: [{rule}] no longer broken: remove it from KNOWN in xtask/src/tidy.rs")?;
        }
        Ok(())
    }
}

/// Every Rust file of the repository that the rules cover, by path relative to `repo`.
pub fn read_tree(repo: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for top in ["src", "tests", "xtask/src", "examples"] {
        let mut pending = vec![repo.join(top)];
        while let Some(dir) = pending.pop() {
            if !dir.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
                    let rel = path.strip_prefix(repo).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                    files.insert(rel, text);
                }
            }
        }
    }
    Ok(files)
}

/// Checks `files` (path relative to the repository, text) against every rule and `known`.
pub fn check(files: &BTreeMap<String, String>, known: &[(Rule, &str, &str)]) -> Outcome {
    let violations = violations(files);
    let listed: BTreeSet<(Rule, &str)> = known.iter().map(|(r, p, _)| (*r, *p)).collect();
    let broken: BTreeSet<(Rule, &str)> = violations.iter().map(|v| (v.rule, v.path.as_str())).collect();
    Outcome {
        new: violations.iter().filter(|v| !listed.contains(&(v.rule, v.path.as_str()))).cloned().collect(),
        fixed: listed.difference(&broken).map(|(r, p)| (*r, p.to_string())).collect(),
    }
}

/// Every broken rule in `files`, sorted.
pub fn violations(files: &BTreeMap<String, String>) -> Vec<Violation> {
    let test_only = test_only_files(files);
    let mut out = Vec::new();
    for (path, text) in files {
        let tokens = tokenize(text);
        let is_test_file = path.starts_with("tests/") || test_only.iter().any(|t| covers(t, path));
        let code = without_test_items(&tokens);
        if !text.starts_with("//!") {
            out.push(violation(Rule::DocLine, path, 1, "the file does not open with a `//!` line".into()));
        }
        let in_src = path.starts_with("src/");
        for t in &tokens {
            let Token::Ident(name) = &t.kind else { continue };
            let nvml = matches!(name.as_str(), "nvml_wrapper" | "nvml_wrapper_sys");
            let cuda = name == "cudarc";
            let allowed = path.starts_with("src/hw/") || (cuda && KERNEL_LAYER.contains(&path.as_str()));
            if (nvml || cuda) && !allowed && !path.starts_with("xtask/") {
                out.push(violation(
                    Rule::Nvml,
                    path,
                    t.line,
                    format!("uses `{name}` outside src/hw{}", kernel_note(cuda)),
                ));
            }
            if name == "rusqlite" && !path.starts_with("src/inventory/") && !path.starts_with("xtask/") {
                out.push(violation(Rule::Sql, path, t.line, "uses `rusqlite` outside src/inventory".into()));
            }
        }
        if path.starts_with("src/cmd/") {
            for (i, t) in tokens.iter().enumerate() {
                let Token::Ident(name) = &t.kind else { continue };
                let next = |k: usize| tokens.get(i + k).map(|t| &t.kind);
                let after_fn = i > 0 && tokens[i - 1].kind == Token::Ident("fn".into());
                let writes = match name.as_str() {
                    "eprintln" | "eprint" => next(1) == Some(&Token::Punct('!')),
                    "stderr" => !after_fn && next(1) == Some(&Token::Punct('(')) && next(2) == Some(&Token::Punct(')')),
                    _ => false,
                };
                if writes {
                    let how = if name == "stderr" { "`stderr()`".to_string() } else { format!("`{name}!`") };
                    out.push(violation(Rule::Stderr, path, t.line, format!("writes stderr with {how}")));
                }
            }
        }
        if in_src && !is_test_file && !path.starts_with("src/hw/fixture/") {
            for t in &code {
                let Token::Str(text) = &t.kind else { continue };
                let lower = text.to_ascii_lowercase();
                if let Some(name) = PLATFORM_NAMES.iter().find(|n| lower.contains(**n)) {
                    out.push(violation(
                        Rule::PlatformNames,
                        path,
                        t.line,
                        format!("names platform `{name}` in the literal {:?}", shorten(text)),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

fn kernel_note(cuda: bool) -> &'static str {
    if cuda {
        " and burn-in's kernel layer"
    } else {
        ""
    }
}

fn violation(rule: Rule, path: &str, line: usize, what: String) -> Violation {
    Violation { rule, path: path.to_string(), line, what }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        text.chars().take(57).collect::<String>() + "..."
    } else {
        text.to_string()
    }
}

/// Whether a test-only module path (a file, or a directory ending in `/`) covers `path`.
fn covers(test_only: &str, path: &str) -> bool {
    if test_only.ends_with('/') {
        path.starts_with(test_only)
    } else {
        path == test_only
    }
}

/// Files that are modules declared under `#[cfg(test)]` (`#[cfg(test)] mod testnode;`): the
/// file itself and, for a module with a directory, everything in it.
fn test_only_files(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let tokens = tokenize(text);
        let dir = module_dir(path);
        for item in test_items(&tokens) {
            if let Some(name) = declared_module(&tokens[item.clone()]) {
                out.push(format!("{dir}{name}.rs"));
                out.push(format!("{dir}{name}/"));
            }
        }
    }
    out
}

/// Where the child modules of the module in `path` live: `src/a/` for `src/a/mod.rs`,
/// `src/lib.rs` and `src/a.rs` alike (`src/a/b.rs` for `mod b;` in `src/a.rs`).
fn module_dir(path: &str) -> String {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    match file {
        "mod.rs" | "lib.rs" | "main.rs" => prefix,
        other => format!("{prefix}{}/", other.trim_end_matches(".rs")),
    }
}

/// `mod NAME;` (with any visibility) as an item's tokens: the module's name.
fn declared_module(item: &[Tok]) -> Option<String> {
    let words: Vec<&Token> = item.iter().map(|t| &t.kind).filter(|k| **k != Token::Punct('#')).collect();
    let at = words.iter().position(|k| **k == Token::Ident("mod".into()))?;
    match (words.get(at + 1), words.get(at + 2)) {
        (Some(Token::Ident(name)), Some(Token::Punct(';'))) => Some(name.clone()),
        _ => None,
    }
}

/// The tokens of a file with every `#[cfg(test)]` item left out.
fn without_test_items(tokens: &[Tok]) -> Vec<Tok> {
    let skipped: Vec<std::ops::Range<usize>> = test_items(tokens);
    tokens.iter().enumerate().filter(|(i, _)| !skipped.iter().any(|r| r.contains(i))).map(|(_, t)| t.clone()).collect()
}

/// The token ranges of items under `#[cfg(test)]` (or a `cfg` naming `test` without `not`),
/// from the attribute to the item's closing `;` or `}`.
fn test_items(tokens: &[Tok]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Some(end) = attribute_end(tokens, i) else {
            i += 1;
            continue;
        };
        let attr = &tokens[i..end];
        let is_cfg = attr.get(2).is_some_and(|t| t.kind == Token::Ident("cfg".into()));
        let names_test = attr.iter().any(|t| t.kind == Token::Ident("test".into()));
        let negated = attr.iter().any(|t| t.kind == Token::Ident("not".into()));
        if !(is_cfg && names_test && !negated) {
            i = end;
            continue;
        }
        // Further attributes, then the item up to its `;` or its block's `}`.
        let mut j = end;
        while let Some(next) = attribute_end(tokens, j) {
            j = next;
        }
        let mut depth = 0usize;
        while j < tokens.len() {
            match tokens[j].kind {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                Token::Punct(';') if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        out.push(i..j);
        i = j;
    }
    out
}

/// When an outer attribute `#[...]` starts at `i`, the index just after its `]`.
fn attribute_end(tokens: &[Tok], i: usize) -> Option<usize> {
    if tokens.get(i)?.kind != Token::Punct('#') || tokens.get(i + 1)?.kind != Token::Punct('[') {
        return None;
    }
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(i + 1) {
        match t.kind {
            Token::Punct('[') => depth += 1,
            Token::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// What the rules look at in Rust source: identifiers, the contents of string literals, and
/// single punctuation characters. Comments (doc comments too), char literals and lifetimes
/// are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tok {
    kind: Token,
    line: usize,
}

fn tokenize(text: &str) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize, line: &mut usize| {
        *line += chars[from..to.min(chars.len())].iter().filter(|c| **c == '\n').count();
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            count_lines(start, i, &mut line);
        } else if let Some((content, end)) = string_at(&chars, i) {
            out.push(Tok { kind: Token::Str(content), line });
            count_lines(i, end, &mut line);
            i = end;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok { kind: Token::Ident(chars[start..i].iter().collect()), line });
        } else {
            out.push(Tok { kind: Token::Punct(c), line });
            i += 1;
        }
    }
    out
}

/// A string literal starting at `i` (`"..."`, `b"..."`, `c"..."`, `r#"..."#`, `br"..."`):
/// its contents and the index after it.
fn string_at(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut j = i;
    if matches!(chars.get(j), Some('b' | 'c')) {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    while raw && chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    // An identifier that merely ends in b, c or r (`crab"`) is not a prefix.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    let start = j;
    while j < chars.len() {
        if !raw && chars[j] == '\\' {
            j += 2;
            continue;
        }
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return Some((chars[start..j].iter().collect(), j + 1 + hashes));
        }
        j += 1;
    }
    Some((chars[start..].iter().collect(), chars.len()))
}

/// `cargo xtask tidy`: the check over this repository, printed.
pub fn cli(repo: &Path) -> anyhow::Result<u8> {
    let outcome = check(&read_tree(repo)?, KNOWN);
    if outcome.is_clean() {
        println!("tidy: every boundary holds ({} known violations left, listed in xtask/src/tidy.rs)", KNOWN.len());
        return Ok(0);
    }
    eprint!("{outcome}");
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
    }

    fn rules_broken(files: &[(&str, &str)]) -> Vec<(Rule, String)> {
        violations(&tree(files)).into_iter().map(|v| (v.rule, v.path)).collect()
    }

    /// The repository itself: no boundary crossed outside `KNOWN`, and nothing in `KNOWN`
    /// that is clean again.
    #[test]
    fn the_source_tree_keeps_its_boundaries() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository");
        let files = read_tree(repo).expect("read the source tree");
        assert!(files.contains_key("src/hw/nvml/session.rs") && files.len() > 100, "read the whole tree");
        let outcome = check(&files, KNOWN);
        assert!(outcome.is_clean(), "tidy:\n{outcome}");
    }

    #[test]
    fn nvml_and_cuda_outside_their_layers_are_caught() {
        let broken = rules_broken(&[
            ("src/hw/nvml/session.rs", "//! ok\nuse nvml_wrapper::Nvml;\n"),
            ("src/burnin/cuda.rs", "//! ok\nuse cudarc::driver::sys;\n"),
            ("src/burnin/judge.rs", "//! planted\nfn f(n: &nvml_wrapper::Nvml) {}\n"),
            ("src/report/x.rs", "//! planted\nuse nvml_wrapper_sys::bindings;\n"),
            ("src/burnin/run.rs", "//! planted\nfn v() { unsafe { cudarc::driver::sys::cuInit(0) }; }\n"),
            ("src/burnin/gemm.rs", "//! NVML is not the kernel layer's\nuse nvml_wrapper::Device;\n"),
            ("src/cmd/y.rs", "//! a comment naming nvml_wrapper and a \"cudarc\" string are fine\n"),
        ]);
        assert_eq!(
            broken,
            [
                (Rule::Nvml, "src/burnin/gemm.rs".to_string()),
                (Rule::Nvml, "src/burnin/judge.rs".to_string()),
                (Rule::Nvml, "src/burnin/run.rs".to_string()),
                (Rule::Nvml, "src/report/x.rs".to_string()),
            ]
        );
    }

    #[test]
    fn sql_outside_the_inventory_is_caught() {
        let broken = rules_broken(&[
            ("src/inventory/db.rs", "//! ok\nuse rusqlite::Connection;\n"),
            ("src/fleet/record.rs", "//! planted\nfn f(c: &rusqlite::Connection) {}\n"),
            ("tests/x.rs", "//! planted\nuse rusqlite::params;\n"),
        ]);
        assert_eq!(broken, [(Rule::Sql, "src/fleet/record.rs".into()), (Rule::Sql, "tests/x.rs".into())]);
    }

    #[test]
    fn platform_names_in_code_are_caught_but_not_in_tests_comments_or_the_fixture_builder() {
        let broken = rules_broken(&[
            (
                "src/fleet/rack_checks.rs",
                "//! planted: a match on a name\nfn nvl(p: &str) -> bool { matches!(p, \"gb200-nvl72-tray\") }\n",
            ),
            ("src/checks/x.rs", "//! planted\nconst T: &str = r#\"HGX-B200\"#;\n"),
            (
                "src/checks/y.rs",
                "//! ok: hgx-b200 in a comment\n/// b200 in a doc comment\nfn f() -> &'static str { \"generic\" }\n\
                 #[cfg(test)]\nmod tests {\n    fn t() { let _ = \"hgx-b200\"; }\n}\n",
            ),
            ("src/hw/fixture/platforms.rs", "//! ok\nconst H: &str = \"hgx-b200-01\";\n"),
            ("src/lib.rs", "//! ok\n#[cfg(test)]\npub mod testnode;\n#[cfg(test)]\nmod suite;\n"),
            ("src/testnode.rs", "//! ok: test-only by its declaration\nconst N: &str = \"h100-sxm\";\n"),
            ("src/suite/mod.rs", "//! ok\nconst N: &str = \"gb200\";\n"),
            ("tests/t.rs", "//! ok\nconst N: &str = \"hgx-b200\";\n"),
        ]);
        assert_eq!(
            broken,
            [(Rule::PlatformNames, "src/checks/x.rs".into()), (Rule::PlatformNames, "src/fleet/rack_checks.rs".into())]
        );
    }

    #[test]
    fn stderr_written_by_commands_is_caught() {
        let broken = rules_broken(&[
            ("src/cmd/validate.rs", "//! planted\nfn f() { eprintln!(\"kiln: error\"); }\n"),
            ("src/cmd/rack.rs", "//! planted\nfn f() { eprint!(\"\\r{}\", 1); }\n"),
            (
                "src/cmd/image.rs",
                "//! planted\nuse std::io::Write;\nfn f() { let _ = writeln!(std::io::stderr(), \"x\"); }\n",
            ),
            (
                "src/cmd/spec.rs",
                "//! ok: println, a string naming eprintln!, a child's stderr and a fn of that name\n\
                 fn f(c: &mut std::process::Command) { println!(\"eprintln! stderr()\"); c.stderr(p()); }\n\
                 fn stderr() {}\n",
            ),
            ("src/main.rs", "//! ok: main prints\nfn main() { eprintln!(\"x\"); }\n"),
        ]);
        assert_eq!(
            broken,
            [
                (Rule::Stderr, "src/cmd/image.rs".into()),
                (Rule::Stderr, "src/cmd/rack.rs".into()),
                (Rule::Stderr, "src/cmd/validate.rs".into()),
            ]
        );
    }

    #[test]
    fn a_file_without_its_doc_line_is_caught() {
        let broken = rules_broken(&[
            ("src/a.rs", "//! ok\n"),
            ("tests/b.rs", "// a plain comment is not a doc line\n"),
            ("xtask/src/c.rs", "use std::fs;\n"),
            ("examples/d.rs", "\n//! not on the first line\n"),
        ]);
        assert_eq!(
            broken,
            [
                (Rule::DocLine, "examples/d.rs".into()),
                (Rule::DocLine, "tests/b.rs".into()),
                (Rule::DocLine, "xtask/src/c.rs".into()),
            ]
        );
    }

    /// The list only shrinks: an unlisted violation fails, and so does a listed file that is
    /// clean again.
    #[test]
    fn known_violations_are_allowed_and_must_stay_broken_to_stay_listed() {
        let files = tree(&[
            ("src/cmd/a.rs", "//! listed and still broken\nfn f() { eprintln!(\"x\"); }\n"),
            ("src/cmd/b.rs", "//! listed but fixed\nfn f() {}\n"),
            ("src/cmd/c.rs", "//! not listed\nfn f() { eprintln!(\"x\"); }\n"),
        ]);
        let known = [(Rule::Stderr, "src/cmd/a.rs", "why"), (Rule::Stderr, "src/cmd/b.rs", "why")];
        let outcome = check(&files, &known);
        let new: Vec<(Rule, &str, usize)> = outcome.new.iter().map(|v| (v.rule, v.path.as_str(), v.line)).collect();
        assert_eq!(new, [(Rule::Stderr, "src/cmd/c.rs", 2)]);
        assert_eq!(outcome.fixed, [(Rule::Stderr, "src/cmd/b.rs".to_string())]);
        assert!(outcome.to_string().contains("src/cmd/b.rs: [stderr] no longer broken"), "{outcome}");
    }

    #[test]
    fn literals_comments_and_lifetimes_are_told_apart() {
        let text =
            "//! doc\nfn f<'a>(x: &'a str) -> char { let _ = br##\"a\"# \"b\"##; /* \"c\" /* nested */ */ '\"' }\n\
                    const S: &str = \"esc \\\" still\";\n";
        let strings: Vec<(String, usize)> = tokenize(text)
            .into_iter()
            .filter_map(|t| match t.kind {
                Token::Str(s) => Some((s, t.line)),
                _ => None,
            })
            .collect();
        assert_eq!(strings, [("a\"# \"b".to_string(), 2), ("esc \\\" still".to_string(), 3)]);
    }
}
