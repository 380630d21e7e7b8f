//! TLS for BMC connections: system roots, a CA file, a pinned certificate, or (asked for) none.
//!
//! BMCs mostly ship self-signed certificates. kiln verifies by default and
//! offers two ways to trust such a BMC without turning checks off: a CA file
//! (the site's own CA that signed the BMC certificates) or the SHA-256
//! fingerprint of the BMC's own certificate. Turning verification off takes
//! an explicit `--insecure` and is logged as a warning.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How a BMC's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode", content = "value")]
pub enum TlsPolicy {
    /// Verify the chain and the name against the system's root certificates.
    SystemRoots,
    /// Verify the chain and the name against the CA certificates in this PEM file only.
    CaFile(PathBuf),
    /// Accept exactly the leaf certificate with this SHA-256 fingerprint,
    /// whatever its issuer, name or dates (the usual way to trust a BMC's
    /// self-signed certificate).
    Pinned(Fingerprint),
    /// Accept any certificate. Only with an explicit `--insecure`.
    Insecure,
}

impl fmt::Display for TlsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsPolicy::SystemRoots => f.write_str("verified against the system roots"),
            TlsPolicy::CaFile(p) => write!(f, "verified against CA file {}", p.display()),
            TlsPolicy::Pinned(fp) => write!(f, "pinned to {fp}"),
            TlsPolicy::Insecure => f.write_str("NOT verified (--insecure)"),
        }
    }
}

/// A SHA-256 certificate fingerprint, written `sha256:` and 64 hex digits
/// (colons between byte pairs allowed, as `openssl x509 -fingerprint` prints them).
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn parse(text: &str) -> Result<Self, TlsError> {
        let bad = |why: &str| TlsError::BadFingerprint { value: text.to_string(), why: why.to_string() };
        let trimmed = text.trim();
        let (algo, digits) = trimmed.split_once(':').ok_or_else(|| bad("expected sha256:<64 hex digits>"))?;
        if !algo.eq_ignore_ascii_case("sha256") {
            return Err(bad("only sha256 fingerprints are supported"));
        }
        let hexdigits: String = digits.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hexdigits).map_err(|_| bad("not hexadecimal"))?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| bad("a sha256 fingerprint has 32 bytes (64 hex digits)"))?;
        Ok(Fingerprint(array))
    }

    /// The fingerprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("bad certificate fingerprint {value:?}: {why}")]
    BadFingerprint { value: String, why: String },
    #[error("cannot read CA file {}", path.display())]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("CA file {} holds no usable certificate", path.display())]
    NoCaCertificate { path: PathBuf },
    #[error("no system root certificates found (install ca-certificates, or use a CA file or a pinned fingerprint)")]
    NoSystemRoots,
    #[error("cannot build the certificate verifier")]
    Verifier {
        #[source]
        source: rustls::client::VerifierBuilderError,
    },
    #[error("cannot set up the TLS protocol versions")]
    Protocol {
        #[source]
        source: rustls::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the rustls client configuration for a policy.
pub fn client_config(policy: &TlsPolicy) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match policy {
        TlsPolicy::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(TlsError::NoSystemRoots);
            }
            webpki_verifier(roots, &provider)?
        }
        TlsPolicy::CaFile(path) => webpki_verifier(read_ca_file(path)?, &provider)?,
        TlsPolicy::Pinned(fp) => {
            Arc::new(LeafVerifier { pinned: Some(fp.clone()), algorithms: provider.signature_verification_algorithms })
        }
        TlsPolicy::Insecure => {
            Arc::new(LeafVerifier { pinned: None, algorithms: provider.signature_verification_algorithms })
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Protocol { source })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsError::Verifier { source })?;
    Ok(verifier)
}

fn read_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let read_err = |source| TlsError::ReadCaFile { path: path.to_path_buf(), source };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(read_err)? {
        let cert = cert.map_err(read_err)?;
        // A certificate webpki cannot use as a trust anchor is skipped here and
        // reported below if nothing usable is left.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(TlsError::NoCaCertificate { path: path.to_path_buf() });
    }
    Ok(roots)
}

/// Checks only the leaf certificate: exactly the one named by its SHA-256
/// fingerprint (`--fingerprint`), or any (`--insecure`, `pinned: None`).
///
/// The chain, issuer, name and validity dates are deliberately not checked:
/// pinning says "this very certificate", which is how a technician trusts a
/// BMC's self-signed certificate read off its web page or a previous visit.
/// The handshake signature is still verified against the certificate's key
/// in both modes, so the session stays bound to the presented key.
#[derive(Debug)]
struct LeafVerifier {
    pinned: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pinned) = &self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = Fingerprint::of_der(end_entity.as_ref());
        if presented == *pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {presented} does not match the pinned {pinned}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_accepts_openssl_and_plain_forms() {
        let plain = format!("sha256:{}", "ab".repeat(32));
        let colons = format!("SHA256:{}", vec!["AB"; 32].join(":"));
        let a = Fingerprint::parse(&plain).expect("plain form parses");
        let b = Fingerprint::parse(&colons).expect("openssl form parses");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), plain);
    }

    #[test]
    fn fingerprint_rejects_bad_input_with_reason() {
        for (text, why) in [
            ("ab".repeat(32), "expected sha256"),
            (format!("sha1:{}", "ab".repeat(20)), "only sha256"),
            (format!("sha256:{}", "zz".repeat(32)), "not hexadecimal"),
            (format!("sha256:{}", "ab".repeat(31)), "32 bytes"),
        ] {
            let err = Fingerprint::parse(&text).expect_err("must be refused").to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = client_config(&TlsPolicy::CaFile(path)).expect_err("no certificate in file");
        assert!(err.to_string().contains("empty.pem"), "{err}");
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let err = client_config(&TlsPolicy::CaFile("/nonexistent/kiln-ca.pem".into())).expect_err("missing file");
        assert!(err.to_string().contains("kiln-ca.pem"), "{err}");
    }
}
