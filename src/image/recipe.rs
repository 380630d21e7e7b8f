//! Image recipes (`images/*.toml`): what an image is built from and carries.
//!
//! A malformed recipe is reported like a malformed platform spec: the file,
//! the line, the field and what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use crate::toml_error::{line_column, locate, span_of, FieldPath, Located};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Names the artifact files: lowercase letters, digits, `.`, `-`, `_`.
    pub name: String,
    pub description: String,
    pub arch: Arch,
    /// Platform spec names (`checks/platforms`) the image is meant for.
    pub platforms: Vec<String>,
    /// The kernel command line to boot the image with (PXE, and recorded).
    pub kernel_cmdline: String,
    pub base: BaseImage,
    /// The NVIDIA driver and CUDA versions the image carries; absent for an
    /// image without a GPU stack (the test image).
    #[serde(default)]
    pub nvidia: Option<NvidiaStack>,
    pub cloud_init: CloudInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Raw,
    Qcow2,
}

impl ImageFormat {
    /// The name `qemu-img -f` takes.
    pub fn qemu_name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseImage {
    /// A local file, relative to the recipe's directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Or a URL `kiln image build` downloads.
    #[serde(default)]
    pub url: Option<String>,
    /// SHA-256 of the file as given (before any conversion).
    pub sha256: Digest,
    pub format: ImageFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvidiaStack {
    pub driver: String,
    pub cuda: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudInit {
    /// Hostname pattern; `{node}` becomes the node's name in the rack manifest.
    pub hostname: String,
    /// Public keys only; a private key here is refused.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    #[serde(default)]
    pub agent: Option<Agent>,
}

/// The kiln agent a freshly booted node fetches and starts, so the
/// controller can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Where the node downloads the kiln binary from.
    pub url: String,
    /// SHA-256 of that binary; the node refuses a binary that differs.
    #[serde(default)]
    pub sha256: Option<Digest>,
    /// Arguments of the service: `kiln ARGS...`.
    pub args: Vec<String>,
}

/// A recipe and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    pub file: PathBuf,
}

impl LoadedRecipe {
    /// The base image path resolved against the recipe's directory.
    pub fn base_path(&self) -> Option<PathBuf> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        self.recipe.base.path.as_ref().map(|p| dir.join(p))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("read recipe {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{}:{}: field `{}`: {}", file.display(), at.line, at.column, at.field, at.message)]
    Parse { file: PathBuf, at: Located },
    #[error("{}:{}{}", file.display(), show(issues.first()), more(issues))]
    Invalid { file: PathBuf, issues: Vec<Located> },
}

fn show(issue: Option<&Located>) -> String {
    match issue {
        Some(i) if i.line > 0 => format!("{}:{}: field `{}`: {}", i.line, i.column, i.field, i.message),
        Some(i) => format!(" field `{}`: {}", i.field, i.message),
        None => String::new(),
    }
}

fn more(issues: &[Located]) -> String {
    match issues.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

/// Parse and check a recipe. `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<Recipe, RecipeError> {
    let recipe: Recipe =
        toml::from_str(text).map_err(|e| RecipeError::Parse { file: file.to_path_buf(), at: locate(text, &e) })?;
    let issues: Vec<Located> = check(&recipe)
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = span_of(text, &path).map(|s| line_column(text, s.start)).unwrap_or((0, 0));
            Located { line, column, field: path.to_string(), message }
        })
        .collect();
    if issues.is_empty() {
        Ok(recipe)
    } else {
        Err(RecipeError::Invalid { file: file.to_path_buf(), issues })
    }
}

/// Read, parse and check a recipe file.
pub fn load(file: &Path) -> Result<LoadedRecipe, RecipeError> {
    let text = crate::input::read_to_string(file, crate::input::Input::Recipe)
        .map_err(|source| RecipeError::Read { file: file.to_path_buf(), source })?;
    Ok(LoadedRecipe { recipe: parse(&text, file)?, file: file.to_path_buf() })
}

/// Everything impossible in a recipe that parsed, as (field, message).
pub fn check(r: &Recipe) -> Vec<(FieldPath, String)> {
    let root = FieldPath::root();
    let mut issues = Vec::new();
    let mut push = |path: FieldPath, msg: String| issues.push((path, msg));
    if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c)) {
        push(root.key("name"), format!("{:?}: use lowercase letters, digits, '.', '-' and '_' only", r.name));
    }
    if r.platforms.is_empty() {
        push(root.key("platforms"), "name at least one platform the image is for".into());
    }
    for (i, p) in r.platforms.iter().enumerate() {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            push(root.key("platforms").index(i), format!("{p:?} is not a platform name"));
        }
    }
    if r.kernel_cmdline.contains(['\n', '\r']) {
        push(root.key("kernel_cmdline"), "must be one line".into());
    }
    let base = root.key("base");
    match (&r.base.path, &r.base.url) {
        (Some(_), Some(_)) => push(base.key("url"), "give either path or url, not both".into()),
        (None, None) => push(base.clone(), "give the base image as path or url".into()),
        (None, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            push(base.key("url"), format!("{url:?}: only http:// and https:// URLs are fetched"))
        }
        _ => {}
    }
    if let Some(n) = &r.nvidia {
        let nv = root.key("nvidia");
        if !is_version(&n.driver) {
            push(nv.key("driver"), format!("{:?} is not a version like 570.148.08", n.driver));
        }
        if !is_version(&n.cuda) {
            push(nv.key("cuda"), format!("{:?} is not a version like 12.8", n.cuda));
        }
    }
    let ci = root.key("cloud_init");
    if let Err(why) = render_hostname(&r.cloud_init.hostname, "node01") {
        push(ci.key("hostname"), why);
    }
    for (i, key) in r.cloud_init.ssh_authorized_keys.iter().enumerate() {
        if let Err(why) = check_public_key(key) {
            push(ci.key("ssh_authorized_keys").index(i), why);
        }
    }
    if let Some(agent) = &r.cloud_init.agent {
        if !(agent.url.starts_with("http://") || agent.url.starts_with("https://")) {
            push(ci.key("agent").key("url"), format!("{:?}: the node fetches over http:// or https://", agent.url));
        }
        if agent.args.is_empty() {
            push(ci.key("agent").key("args"), "give the agent's arguments (kiln ARGS...)".into());
        }
    }
    issues
}

fn is_version(v: &str) -> bool {
    !v.is_empty() && v.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The hostname for `node` from a pattern, or why the pattern cannot give a
/// valid hostname. `{node}` is the only placeholder.
pub fn render_hostname(pattern: &str, node: &str) -> Result<String, String> {
    let rest = pattern.replace("{node}", "");
    if rest.contains(['{', '}']) {
        return Err(format!("{pattern:?}: the only placeholder is {{node}}"));
    }
    let name = pattern.replace("{node}", node).to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("{pattern:?} gives {name:?}, which is not a valid hostname"));
    }
    Ok(name)
}

fn check_public_key(key: &str) -> Result<(), String> {
    if key.contains("PRIVATE KEY") {
        return Err("this is a private key: only public keys belong in a recipe".into());
    }
    let mut words = key.split_whitespace();
    let kind = words.next().unwrap_or("");
    let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    match words.next() {
        Some(body) if known && base64_like(body) => Ok(()),
        _ => Err(format!("not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\"): {:.40}", key)),
    }
}

fn base64_like(s: &str) -> bool {
    s.len() >= 16 && s.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "t"
description = "test"
arch = "x86_64"
platforms = ["generic"]
kernel_cmdline = "console=ttyS0"

[base]
path = "base.raw"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
format = "raw"

[cloud_init]
hostname = "lab-{node}"
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln kiln@lab"]
"#;

    fn parse_t(text: &str) -> Result<Recipe, RecipeError> {
        parse(text, Path::new("images/t.toml"))
    }

    fn first(err: RecipeError) -> Located {
        match err {
            RecipeError::Parse { at, .. } => at,
            RecipeError::Invalid { mut issues, .. } => issues.remove(0),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_sound_recipe_parses() {
        let r = parse_t(GOOD).expect("valid");
        assert_eq!(r.base.format, ImageFormat::Raw);
        assert_eq!(render_hostname(&r.cloud_init.hostname, "n7"), Ok("lab-n7".into()));
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = GOOD.replace("format = \"raw\"", "format = \"raw\"\ncolour = 1");
        let err = parse_t(&text).expect_err("unknown field");
        assert!(err.to_string().starts_with("images/t.toml:11:1: field `base.colour`"), "{err}");
    }

    #[test]
    fn bad_digest_and_format_are_located() {
        let at = first(parse_t(&GOOD.replace("ba7816bf", "zz")).expect_err("bad digest"));
        assert_eq!((at.line, at.field.as_str()), (9, "base.sha256"));
        assert!(at.message.contains("64 hex digits"), "{}", at.message);
        let at = first(parse_t(&GOOD.replace("format = \"raw\"", "format = \"vmdk\"")).expect_err("bad format"));
        assert_eq!((at.line, at.field.as_str()), (10, "base.format"));
    }

    #[test]
    fn semantic_problems_are_all_reported_with_lines() {
        let text = GOOD
            .replace("path = \"base.raw\"", "path = \"base.raw\"\nurl = \"ftp://x\"")
            .replace("lab-{node}", "lab-{rack}")
            .replace("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln kiln@lab", "-----BEGIN OPENSSH PRIVATE KEY-----");
        let RecipeError::Invalid { issues, .. } = parse_t(&text).expect_err("invalid") else { panic!("not Invalid") };
        let got: Vec<(usize, &str)> = issues.iter().map(|i| (i.line, i.field.as_str())).collect();
        assert_eq!(got, vec![(9, "base.url"), (14, "cloud_init.hostname"), (15, "cloud_init.ssh_authorized_keys[0]")]);
        assert!(issues[2].message.contains("private key"));
    }

    #[test]
    fn hostnames_must_be_valid() {
        assert!(render_hostname("{node}.rack1.example", "gpu-01").is_ok());
        assert!(render_hostname("-{node}", "x").is_err());
        assert!(render_hostname("a_b", "x").is_err());
    }

    #[test]
    fn shipped_recipes_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("images/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let recipe = load(&path).unwrap_or_else(|e| panic!("{e}")).recipe;
                // An agent started on an installed system reports what booted; in
                // imaging mode it would ask the controller for an image to write.
                if let Some(agent) =
                    recipe.cloud_init.agent.as_ref().filter(|a| a.args.first().is_some_and(|a| a == "agent"))
                {
                    assert!(
                        agent.args.windows(2).any(|w| w == ["--mode", "booted"]),
                        "{}: {:?}",
                        path.display(),
                        agent.args
                    );
                }
                names.push(recipe.name);
            }
        }
        names.sort();
        assert_eq!(names, ["kiln-test", "ubuntu-24.04-gb200-tray", "ubuntu-24.04-hgx-b200"]);
    }
}
