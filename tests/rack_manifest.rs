//! Rack manifests: a good one resolves, a bad one is refused naming file, line and field,
//! and no password is ever accepted in the file or printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::rack::{BmcTls, CredentialError, ManifestError, PasswordSource, RackManifest};
use kiln::secret::PasswordError;

const GOOD: &str = r#"
[rack]
id = "lab-r1"
site = "lab"
row = "A"
position = 1
platform = "hgx-b200"

[credentials]
ssh_user = "root"
ssh_key = "keys/lab"
known_hosts = "lab.known_hosts"
bmc_user = "admin"
bmc_password_env = "KILN_TEST_BMC_PASSWORD"
bmc_fingerprint = "sha256:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"

[[nodes]]
name = "node01"
address = "10.77.0.11"
bmc = "https://10.77.0.111:8000"
bmc_system = "/redfish/v1/Systems/abc"
ipmi = "10.77.0.111:623"
macs = ["02:00:00:00:00:11"]
slot = "U12"
kiln_root = "/srv/kiln/fixture"

[[nodes]]
name = "node02"
address = "10.77.0.12"
ssh_port = 2222
tray = 3
imex_address = "192.168.77.12"
"#;

fn parse(text: &str) -> Result<RackManifest, ManifestError> {
    RackManifest::parse(text, Path::new("/racks/lab.toml"))
}

/// The manifest error as the user sees it.
fn refused(text: &str) -> String {
    parse(text).expect_err("must be refused").to_string()
}

#[test]
fn good_manifest_resolves_relative_paths_and_defaults() {
    let m = parse(GOOD).expect("parse");
    assert_eq!(m.rack.id, "lab-r1");
    assert_eq!(m.rack.platform.as_deref(), Some("hgx-b200"));
    assert_eq!(m.credentials.ssh_key.as_deref(), Some(Path::new("/racks/keys/lab")));
    assert_eq!(m.credentials.known_hosts, PathBuf::from("/racks/lab.known_hosts"));
    assert_eq!(m.credentials.bmc_password, Some(PasswordSource::Env("KILN_TEST_BMC_PASSWORD".into())));
    assert_eq!(
        m.credentials.bmc_tls,
        BmcTls::Fingerprint(
            "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89".into()
        )
    );
    assert_eq!(m.nodes.len(), 2);
    assert_eq!(m.nodes[0].ssh_port, 22);
    assert_eq!(m.nodes[1].ssh_port, 2222);
    assert_eq!(m.nodes[1].tray, Some(3));
    assert_eq!(m.nodes[0].imex_address, None);
    assert_eq!(m.nodes[1].imex_address.as_deref(), Some("192.168.77.12"));
    assert_eq!(m.select(&["node02".into()]).expect("select").len(), 1);
    let err = m.select(&["node09".into()]).expect_err("unknown node");
    assert!(err.to_string().contains("no node named \"node09\""), "{err}");
}

#[test]
fn known_hosts_defaults_beside_the_manifest() {
    let text = GOOD.replace("known_hosts = \"lab.known_hosts\"\n", "");
    let m = parse(&text).expect("parse");
    assert_eq!(m.credentials.known_hosts, PathBuf::from("/racks/lab.known_hosts"));
}

#[test]
fn syntax_error_names_file_line_and_field() {
    let text = GOOD.replace("ssh_port = 2222", "ssh_port = \"twenty-two\"");
    let line = text.lines().position(|l| l.contains("twenty-two")).expect("line") + 1;
    let msg = refused(&text);
    assert!(msg.starts_with(&format!("/racks/lab.toml:{line}: field `nodes[1].ssh_port`")), "{msg}");
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let text = GOOD.replace("slot = \"U12\"", "slott = \"U12\"");
    let line = text.lines().position(|l| l.starts_with("slott")).expect("line") + 1;
    let msg = refused(&text);
    assert!(msg.starts_with(&format!("/racks/lab.toml:{line}: field `nodes[0].slott`")), "{msg}");

    let msg = refused(&GOOD.replace("address = \"10.77.0.12\"\n", ""));
    assert!(msg.contains("field `nodes[1].address`") && msg.contains("missing field"), "{msg}");

    let msg = refused(&GOOD.replace("id = \"lab-r1\"\n", ""));
    assert!(msg.contains("field `rack.id`"), "{msg}");
}

#[test]
fn a_password_in_the_file_is_refused() {
    let text = GOOD.replace("bmc_user = \"admin\"", "bmc_user = \"admin\"\nbmc_password = \"hunter2\"");
    let line = text.lines().position(|l| l.starts_with("bmc_password =")).expect("line") + 1;
    let msg = refused(&text);
    assert!(msg.starts_with(&format!("/racks/lab.toml:{line}: field `credentials.bmc_password`")), "{msg}");
    assert!(msg.contains("must never be written in the manifest"), "{msg}");
    assert!(!msg.contains("hunter2"), "the refusal must not repeat the password: {msg}");
}

#[test]
fn exactly_one_password_source() {
    let both = GOOD.replace(
        "bmc_password_env = \"KILN_TEST_BMC_PASSWORD\"",
        "bmc_password_env = \"KILN_TEST_BMC_PASSWORD\"\nbmc_password_file = \"/etc/kiln/bmc\"",
    );
    let msg = refused(&both);
    assert!(msg.contains("field `credentials.bmc_password_file`") && msg.contains("not both"), "{msg}");

    let neither = GOOD.replace("bmc_password_env = \"KILN_TEST_BMC_PASSWORD\"\n", "");
    let msg = refused(&neither);
    assert!(msg.contains("no password source"), "{msg}");
}

#[test]
fn semantic_errors_name_line_and_field() {
    let dup = GOOD.replace("name = \"node02\"", "name = \"node01\"");
    let second = dup.lines().enumerate().filter(|(_, l)| l.contains("name = \"node01\"")).nth(1).expect("line").0 + 1;
    let msg = refused(&dup);
    assert!(msg.starts_with(&format!("/racks/lab.toml:{second}: field `nodes[1].name`")), "{msg}");
    assert!(msg.contains("listed twice"), "{msg}");

    let msg = refused(&GOOD.replace("02:00:00:00:00:11", "02:00:00:00:11"));
    assert!(msg.contains("field `nodes[0].macs`"), "{msg}");
    let msg = refused(&GOOD.replace("https://10.77.0.111:8000", "10.77.0.111:8000"));
    assert!(msg.contains("field `nodes[0].bmc`"), "{msg}");
    let msg = refused(&GOOD.replace("192.168.77.12", "tray3.ib.lab"));
    let line = GOOD.lines().position(|l| l.starts_with("imex_address")).expect("line") + 1;
    assert!(msg.starts_with(&format!("/racks/lab.toml:{line}: field `nodes[1].imex_address`")), "{msg}");
    assert!(msg.contains("not an IP address"), "{msg}");
    let msg = refused(&GOOD.replace("slot = \"U12\"", "slot = \"U12\"\ntray = 1"));
    assert!(msg.contains("slot or tray"), "{msg}");
    let msg = refused(&GOOD.replace("sha256:ab:cd", "sha256:ab"));
    assert!(msg.contains("field `credentials.bmc_fingerprint`"), "{msg}");
    let msg = refused(&GOOD.replace("bmc_user = \"admin\"", "bmc_user = \"admin\"\nbmc_insecure = true"));
    assert!(msg.contains("at most one of"), "{msg}");
}

#[test]
fn password_is_read_at_use_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bmc-pass");
    std::fs::write(&file, "s3cret pass\n").expect("write");
    let text = GOOD.replace(
        "bmc_password_env = \"KILN_TEST_BMC_PASSWORD\"",
        &format!("bmc_password_file = \"{}\"", file.display()),
    );
    let m = parse(&text).expect("parse");
    let secret = m.credentials.bmc_password().expect("read");
    assert_eq!(secret.expose(), "s3cret pass");
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    assert!(!format!("{m:?}").contains("s3cret"));

    std::fs::write(&file, "").expect("write");
    assert!(matches!(m.credentials.bmc_password(), Err(CredentialError::Password(PasswordError::FileEmpty { .. }))));
    std::fs::remove_file(&file).expect("rm");
    let err = m.credentials.bmc_password().expect_err("missing file");
    assert!(err.to_string().contains("bmc-pass"), "{err}");

    let m = parse(&GOOD.replace("KILN_TEST_BMC_PASSWORD", "KILN_TEST_BMC_PASSWORD_UNSET_XYZ")).expect("parse");
    let err = m.credentials.bmc_password().expect_err("unset variable");
    assert!(err.to_string().contains("environment variable KILN_TEST_BMC_PASSWORD_UNSET_XYZ is not set"), "{err}");
}

#[test]
fn the_example_manifest_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory/racks/example.toml");
    let m = RackManifest::load(&path).expect("example manifest");
    assert_eq!(m.nodes.len(), 2);
}

#[test]
fn the_cli_refuses_a_bad_manifest_with_exit_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[rack]\nid = \"r\"\n\n[[nodes]]\nname = \"a\"\naddres = \"x\"\n").expect("write");
    let out =
        Command::new(env!("CARGO_BIN_EXE_kiln")).args(["rack", "status", "--rack"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:6: field `nodes[0].addres`", path.display())), "{stderr}");
}

#[test]
fn a_tray_outside_the_racks_domain_names_file_line_and_field() {
    let text = "[rack]\nid = \"r1\"\nplatform = \"gb200-nvl72-tray\"\n\n[[nodes]]\nname = \"t1\"\naddress = \"10.0.0.1\"\ntray = 1\n\n[[nodes]]\nname = \"t19\"\naddress = \"10.0.0.2\"\ntray = 19\n";
    let m = parse(text).expect("the manifest alone is sound");
    m.check_trays(19).expect("19 trays hold tray 19");
    let err = m.check_trays(18).expect_err("tray 19 of 18").to_string();
    assert!(err.contains(":13: field `nodes[1].tray`"), "{err}");
    assert!(err.contains("outside the rack's 18 compute trays (1-18"), "{err}");
    let zero = parse(&text.replace("tray = 1\n", "tray = 0\n")).expect("parses");
    assert!(zero.check_trays(18).expect_err("tray 0").to_string().contains(":8: field `nodes[0].tray`"));
}

#[test]
fn a_user_or_password_in_an_address_is_refused_saying_where_credentials_go() {
    for (from, to, field) in [
        ("bmc = \"https://10.77.0.111:8000\"", "bmc = \"https://admin:pa55word@10.77.0.111:8000\"", "nodes[0].bmc"),
        ("bmc = \"https://10.77.0.111:8000\"", "bmc = \"http://admin@10.77.0.111:8000\"", "nodes[0].bmc"),
        ("ipmi = \"10.77.0.111:623\"", "ipmi = \"admin:pa55word@10.77.0.111:623\"", "nodes[0].ipmi"),
        ("address = \"10.77.0.12\"", "address = \"root:pa55word@10.77.0.12\"", "nodes[1].address"),
    ] {
        let text = GOOD.replace(from, to);
        let line = text.lines().position(|l| l == to).expect("line") + 1;
        let msg = refused(&text);
        assert!(msg.starts_with(&format!("/racks/lab.toml:{line}: field `{field}`")), "{msg}");
        assert!(msg.contains("carries a user or password"), "{msg}");
        assert!(!msg.contains("pa55word") && !msg.contains("admin@"), "the refusal repeats the credentials: {msg}");
        let says_where = if field.ends_with("address") {
            "credentials.ssh_user"
        } else {
            "credentials.bmc_password_env (an environment variable) or credentials.bmc_password_file"
        };
        assert!(msg.contains(says_where), "{msg}");
    }
}

#[test]
fn the_cli_refuses_a_bmc_url_with_a_password_and_never_echoes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("creds.toml");
    let db = dir.path().join("kiln.db");
    let text = GOOD.replace("bmc = \"https://10.77.0.111:8000\"", "bmc = \"https://admin:pa55word@10.77.0.111:8000\"");
    std::fs::write(&path, text).expect("write");
    for args in [
        &["rack", "status", "--rack"][..],
        &["bmc", "power", "status", "--node", "node01", "--rack"][..],
        &["bmc", "power", "reset", "--node", "node01", "--rack"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .arg(&path)
            .env("KILN_DB", &db)
            .env("KILN_LOG", "trace")
            .env("KILN_TEST_BMC_PASSWORD", "unused")
            .output()
            .expect("run");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("field `nodes[0].bmc`"), "{args:?}: {stderr}");
        assert!(!stdout.contains("pa55word") && !stderr.contains("pa55word"), "{args:?}: {stdout}{stderr}");
    }
    // Refused before anything was recorded.
    if let Ok(bytes) = std::fs::read(&db) {
        assert!(!bytes.windows(8).any(|w| w == b"pa55word"), "the password reached the database");
    }
}
