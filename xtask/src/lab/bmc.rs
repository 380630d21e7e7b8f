//! Each node's BMC: a sushy-tools Redfish emulator (fake driver) with its own state directory, port,
//! TLS certificate from the lab's CA, and basic auth from an htpasswd file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::process::{run, spawn_detached};
use super::sshd::set_mode;

pub const BMC_USER: &str = "admin";

/// The lab CA (`bmc-ca.pem`, the manifest's bmc_ca_file) and one server
/// certificate for every BMC, valid for the host's bridge address.
pub fn ensure_tls(dir: &Path, host_address: &str) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let ca = dir.join("bmc-ca.pem");
    let ca_key = dir.join("bmc-ca.key");
    let cert = dir.join("bmc.pem");
    let key = dir.join("bmc.key");
    let san_file = dir.join("bmc.ext");
    let san = format!(
        "subjectAltName=IP:{host_address},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    );
    // Reissue when the address changed (another subnet) or a file is missing.
    if cert.exists() && ca.exists() && key.exists() && std::fs::read_to_string(&san_file).ok().as_deref() == Some(&san)
    {
        return Ok((ca, cert, key));
    }
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(Command::new("openssl")
        .args(["req", "-x509", "-days", "3650", "-subj", "/CN=kiln lab BMC CA"])
        .args(ec)
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca))?;
    let csr = dir.join("bmc.csr");
    run(Command::new("openssl")
        .args(["req", "-subj", "/CN=kiln lab BMC"])
        .args(ec)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    std::fs::write(&san_file, &san).context("write bmc.ext")?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "3650", "-set_serial", "1", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&san_file)
        .arg("-out")
        .arg(&cert))?;
    set_mode(&key, 0o600)?;
    set_mode(&ca_key, 0o600)?;
    Ok((ca, cert, key))
}

/// The BMC password (`bmc-password`, the manifest's bmc_password_file) and
/// the bcrypt htpasswd file sushy-tools checks it against.
pub fn ensure_password(dir: &Path, venv: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let password_file = dir.join("bmc-password");
    let htpasswd = dir.join("bmc.htpasswd");
    if !password_file.exists() {
        let mut buf = [0u8; 12];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
            .context("read /dev/urandom")?;
        let random: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&password_file, format!("{random}\n")).context("write bmc-password")?;
        set_mode(&password_file, 0o600)?;
    }
    if !htpasswd.exists() {
        // bcrypt is a dependency of sushy-tools, so the venv has it.
        let script = "import bcrypt,sys; pw=open(sys.argv[1]).read().rstrip('\\n').encode(); \
                      print(sys.argv[2] + ':' + bcrypt.hashpw(pw, bcrypt.gensalt(rounds=4)).decode())";
        let line = run(Command::new(venv.join("bin/python3")).arg("-c").arg(script).arg(&password_file).arg(BMC_USER))?;
        std::fs::write(&htpasswd, line).context("write bmc.htpasswd")?;
        set_mode(&htpasswd, 0o600)?;
    }
    Ok((password_file, htpasswd))
}

pub struct BmcConfig<'a> {
    pub node_dir: &'a Path,
    pub name: &'a str,
    pub uuid: &'a str,
    pub mac: &'a str,
    pub node_address: &'a str,
    pub listen: &'a str,
    pub port: u16,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub htpasswd: &'a Path,
}

/// Writes the instance's config and starts it; returns its pid.
pub fn start(c: &BmcConfig<'_>, venv: &Path) -> anyhow::Result<u32> {
    let state = c.node_dir.join("bmc-state");
    std::fs::create_dir_all(&state).context("create the BMC state directory")?;
    let config = c.node_dir.join("sushy.conf");
    let text = format!(
        "# kiln lab BMC for {name}: written by `cargo xtask lab up`\n\
         SUSHY_EMULATOR_LISTEN_IP = '{listen}'\n\
         SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
         SUSHY_EMULATOR_SSL_CERT = '{cert}'\n\
         SUSHY_EMULATOR_SSL_KEY = '{key}'\n\
         SUSHY_EMULATOR_AUTH_FILE = '{auth}'\n\
         SUSHY_EMULATOR_STATE_DIR = '{state}'\n\
         SUSHY_EMULATOR_FAKE_DRIVER = True\n\
         SUSHY_EMULATOR_FAKE_SYSTEMS = [{{'uuid': '{uuid}', 'name': '{name}', 'power_state': 'On', \
         'external_notifier': False, 'nics': [{{'mac': '{mac}', 'ip': '{ip}'}}]}}]\n",
        name = c.name,
        listen = c.listen,
        port = c.port,
        cert = c.cert.display(),
        key = c.key.display(),
        auth = c.htpasswd.display(),
        state = state.display(),
        uuid = c.uuid,
        mac = c.mac,
        ip = c.node_address,
    );
    std::fs::write(&config, text).context("write sushy.conf")?;
    let argv = vec![
        venv.join("bin/sushy-emulator").to_string_lossy().into_owned(),
        "--config".to_string(),
        config.to_string_lossy().into_owned(),
    ];
    spawn_detached(&argv, &c.node_dir.join("bmc.log"))
}
