//! Shared helpers for the BMC integration tests: a recorded-tree HTTP(S) server,
//! the sushy-tools emulator, ipmi_sim, and target builders.
#![allow(dead_code)]

#[path = "../http_support/mod.rs"]
pub mod http;
pub mod ipmisim;
pub mod rack_cli;
pub mod server;
pub mod sushy;

use kiln::bmc::{BmcTarget, RetryPolicy, Secret, TlsPolicy};
use std::time::Duration;

pub fn target(url: &str, user: &str, password: &str, tls: TlsPolicy) -> BmcTarget {
    BmcTarget {
        node: Some("node01".into()),
        url: url.to_string(),
        system_path: None,
        username: user.to_string(),
        password: Secret::new(password),
        tls,
        ipmi: None,
    }
}

/// A policy with short waits, so fault tests take well under a second each.
pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        tries: 4,
        first_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(20),
    }
}

/// Print the skip line the test tiers agree on, for a test that cannot run here.
/// With `KILN_REQUIRE_PEERS=1` (set in CI) a missing peer fails the test instead.
pub fn skip(why: &str) {
    if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("required peer unavailable: {why}");
    }
    // Written to the process's stderr directly: libtest captures `eprintln!`
    // of passing tests, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}
