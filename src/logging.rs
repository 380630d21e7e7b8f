//! Log set-up for the binary: `KILN_LOG` (or `-v`) chooses what is shown, and a second filter that
//! no setting reaches drops what must never be shown.
//!
//! The HTTP client and TLS crates (ureq, ureq-proto, rustls) log the raw bytes of each request at
//! debug and trace level, `Authorization: Basic ...` included. Adding `ureq=warn` to the user's
//! filter is not enough: a more specific directive (`KILN_LOG=ureq_proto::util=trace`) wins over
//! it. So the events of those crates below warn are dropped by their own per-layer filter, which
//! the layer applies after (and independently of) the `KILN_LOG` filter: an event is written only
//! when both let it through, and `KILN_LOG` can only configure the first. kiln's own lines already
//! name each request and its status without headers.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Crates whose events below warn can carry credentials (wire dumps, headers).
const WIRE_CRATES: [&str; 3] = ["ureq", "ureq_proto", "rustls"];

/// True when an event may be logged at all, whatever the filter asks for: not a debug or trace
/// event of the HTTP client or TLS crates.
pub fn may_log(meta: &Metadata<'_>) -> bool {
    if *meta.level() <= Level::WARN {
        return true;
    }
    let target = meta.target();
    !WIRE_CRATES.iter().any(|c| target.strip_prefix(c).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

/// Log to stderr: `KILN_LOG` when set (an `EnvFilter`), else `warn`, `info` (`-v`) or `debug`
/// (`-vv`); never the wire log of the HTTP client (`may_log`).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let chosen = EnvFilter::try_from_env("KILN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(chosen)
        .with_filter(filter_fn(may_log));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new("e", target, level, None, None, None, FieldSet::new(&[], Identifier(&SITE)), Kind::EVENT)
    }

    #[test]
    fn wire_crates_are_silent_below_warn_and_everything_else_is_left_to_the_filter() {
        for target in ["ureq", "ureq::unversioned", "ureq_proto::util", "rustls::client::hs"] {
            assert!(!may_log(&meta(target, Level::TRACE)), "{target}");
            assert!(!may_log(&meta(target, Level::DEBUG)), "{target}");
            assert!(!may_log(&meta(target, Level::INFO)), "{target}");
            assert!(may_log(&meta(target, Level::WARN)), "{target}");
            assert!(may_log(&meta(target, Level::ERROR)), "{target}");
        }
        for target in ["kiln::bmc::http", "ureqx", "rustls_pemfile_like", "kiln"] {
            assert!(may_log(&meta(target, Level::TRACE)), "{target}");
        }
    }
}
