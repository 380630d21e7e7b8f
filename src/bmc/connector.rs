//! A ureq connector that wraps the TCP stream in rustls with kiln's own `ClientConfig`.
//!
//! ureq's built-in TLS only offers system or bundled roots or no verification
//! at all; pinning a BMC's certificate needs a custom rustls verifier, so kiln
//! plugs its own TLS layer into ureq's connector chain (TCP, then this).
//! These ureq types are outside its semver promise, which is why Cargo.toml
//! keeps ureq on one minor version.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use ureq::config::Config;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector, Transport, TransportAdapter,
};
use ureq::Agent;

/// An agent with `config` over TCP, and over kiln's TLS when `tls` is given.
/// Without it the agent speaks plain http only, so a plain-http peer works on
/// a machine without system root certificates.
pub fn agent(config: Config, tls: Option<Arc<ClientConfig>>) -> Agent {
    match tls {
        Some(tls) => Agent::with_parts(
            config,
            ().chain(TcpConnector::default()).chain(TlsConnector::new(tls)),
            DefaultResolver::default(),
        ),
        None => Agent::with_parts(config, ().chain(TcpConnector::default()), DefaultResolver::default()),
    }
}

/// An agent for a peer's API (a BMC's Redfish, the Kubernetes API): every
/// status is answered, never raised; no redirects and no proxy, so requests
/// and credentials go only where the URL says; https only when `tls` is given.
pub fn api_agent(tls: Option<Arc<ClientConfig>>, connect: Duration, global: Option<Duration>) -> Agent {
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .https_only(tls.is_some())
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(connect))
        .timeout_global(global)
        .build();
    agent(config, tls)
}

/// Adds TLS to an `https` connection; passes plain `http` through untouched.
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    pub fn new(config: Arc<ClientConfig>) -> Self {
        TlsConnector { config }
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::ConnectionFailed);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().ok_or(ureq::Error::Tls("no host in the url"))?;
        // An IPv6 literal arrives in brackets; rustls wants the bare address.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name =
            ServerName::try_from(bare.to_string()).map_err(|_| ureq::Error::Tls("host is not a valid server name"))?;
        let conn = ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let mut stream = StreamOwned { conn, sock };
        // Finish the handshake here, so a refused certificate is reported by
        // the connect step rather than as a broken read later.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream })))
    }
}

/// A TLS session over the chained transport.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        self.stream.flush()?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
