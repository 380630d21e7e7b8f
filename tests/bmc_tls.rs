//! TLS policies against a real HTTPS server with certificates made at test time: refused by
//! default, accepted with the CA file, accepted with the right pin, refused with a wrong one,
//! accepted with --insecure.

mod bmc_support;

use std::sync::Arc;

use bmc_support::server::{Options, RecordedServer};
use bmc_support::{quick_policy, target};
use kiln::bmc::{Bmc, BmcError, Fingerprint, PowerState, RedfishBmc, TlsPolicy};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A site CA and a BMC certificate it signed for 127.0.0.1, as a BMC would present it.
struct Pki {
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn make_pki() -> Pki {
    make_pki_named("kiln test site CA")
}

fn make_pki_named(ca_name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf params");
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "bmc node01");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf cert");
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

fn https_server(pki: &Pki) -> RecordedServer {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key())
        .expect("server config");
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/redfish/gh200");
    RecordedServer::start(Options { root: Some(root), auth: None, etags: false, tls: Some(Arc::new(config)) })
}

// The error is returned whole so the tests can print its chain.
#[allow(clippy::result_large_err)]
fn power_with(server: &RecordedServer, tls: TlsPolicy) -> Result<PowerState, BmcError> {
    let bmc = RedfishBmc::with_policy(&target(&server.url(), "admin", "pw", tls), quick_policy())?;
    bmc.power_state()
}

#[test]
fn unverified_certificate_is_refused_by_default() {
    let pki = make_pki();
    let server = https_server(&pki);
    // The system roots do not know the test CA. (On a machine with no roots at
    // all the client refuses to start instead, which is just as much a refusal.)
    let err = power_with(&server, TlsPolicy::SystemRoots).expect_err("unknown issuer");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains(&server.url()), "{chain}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("no system root certificates"),
        "refusal must say why: {chain}"
    );
    assert!(
        !server.requests().iter().any(|r| r.path.starts_with("/redfish")),
        "no request may pass an unverified certificate"
    );
}

#[test]
fn certificate_is_accepted_with_the_site_ca_file() {
    let pki = make_pki();
    let server = https_server(&pki);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("site-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("write CA");
    assert_eq!(power_with(&server, TlsPolicy::CaFile(ca)).expect("verified by the CA"), PowerState::On);
}

#[test]
fn unrelated_ca_file_is_refused() {
    let pki = make_pki();
    let other = make_pki_named("another site CA");
    let server = https_server(&pki);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, &other.ca_pem).expect("write CA");
    let err = power_with(&server, TlsPolicy::CaFile(ca)).expect_err("another CA did not sign it");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}

#[test]
fn pinned_fingerprint_accepts_exactly_that_certificate() {
    let pki = make_pki();
    let server = https_server(&pki);
    let right = Fingerprint::of_der(pki.leaf_der.as_ref());
    // Written the way openssl prints it, to check the parsing path too.
    let openssl_form = format!(
        "SHA256:{}",
        right
            .to_string()
            .trim_start_matches("sha256:")
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    );
    let parsed = Fingerprint::parse(&openssl_form).expect("openssl form parses");
    assert_eq!(power_with(&server, TlsPolicy::Pinned(parsed)).expect("pinned cert accepted"), PowerState::On);
}

#[test]
fn wrong_fingerprint_is_refused_naming_both() {
    let pki = make_pki();
    let server = https_server(&pki);
    let wrong = Fingerprint::parse(&format!("sha256:{}", "ab".repeat(32))).expect("parses");
    let err = power_with(&server, TlsPolicy::Pinned(wrong)).expect_err("wrong pin");
    let chain = format!("{:#}", anyhow::Error::from(err));
    let presented = Fingerprint::of_der(pki.leaf_der.as_ref()).to_string();
    assert!(chain.contains(&presented) && chain.contains(&"ab".repeat(32)), "{chain}");
    // A refused certificate is not retried.
    assert!(chain.contains("after 1 try"), "{chain}");
}

#[test]
fn insecure_accepts_any_certificate() {
    let pki = make_pki();
    let server = https_server(&pki);
    assert_eq!(power_with(&server, TlsPolicy::Insecure).expect("accepted unverified"), PowerState::On);
}

#[test]
fn https_client_refuses_a_plain_http_server() {
    // A URL that says https must not silently fall back to http.
    let server = RecordedServer::recorded("gh200", None);
    let url = server.url().replace("http://", "https://");
    let bmc =
        RedfishBmc::with_policy(&target(&url, "admin", "pw", TlsPolicy::Insecure), quick_policy()).expect("builds");
    assert!(bmc.power_state().is_err());
    assert!(server.requests().is_empty());
}
