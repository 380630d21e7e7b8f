//! Credentials out of anything kiln shows or keeps: the `user:password@` part of every URL.
//!
//! A URL may carry credentials (`http://user:pass@host/x.iso`), and a BMC fetching an image needs
//! them; but the URL is also printed, logged, put in JSON and written to the append-only
//! inventory, where a password can never be taken back. Everything that shows or stores a URL, or
//! text that may hold one (an error chain, a lifecycle cause), passes it through `userinfo`. One
//! function, so that every place redacts the same way.

use std::borrow::Cow;

/// What replaces the user and password of a URL.
pub const REDACTED: &str = "***";

/// `text` with the userinfo of every URL in it (`scheme://USERINFO@host`) replaced by `***`.
/// Works on a bare URL and on free text holding URLs (an error message, a log line). The
/// authority of a URL ends at the first `/`, `?`, `#`, whitespace, quote or angle bracket; its
/// userinfo is everything before the authority's last `@`.
pub fn userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| "/?#\"'`<>".contains(c) || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(sign) => {
                out.push_str(REDACTED);
                out.push_str(&authority[sign..]);
                changed = true;
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// True when `url` carries a user or password (`scheme://user[:pass]@host`).
pub fn has_userinfo(url: &str) -> bool {
    matches!(userinfo(url), Cow::Owned(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userinfo_of_every_url_is_replaced_and_nothing_else() {
        let cases = [
            ("http://user:pass@host/x.iso", "http://***@host/x.iso"),
            ("https://admin:p%40ss@10.0.0.1:8443", "https://***@10.0.0.1:8443"),
            ("http://user@host", "http://***@host"),
            ("http://a:b@c@host/p?q=1", "http://***@host/p?q=1"),
            (
                "GET http://u:pw@h1/a failed; retried http://h2/b@c and \"ftp://x:y@h3\"",
                "GET http://***@h1/a failed; retried http://h2/b@c and \"ftp://***@h3\"",
            ),
            ("bmc https://u:s3cret@[fd00::1]:443 answered 500", "bmc https://***@[fd00::1]:443 answered 500"),
            ("image http://host/files/@scope/x.raw", "image http://host/files/@scope/x.raw"),
            ("no url here, mail root@host", "no url here, mail root@host"),
            ("http://host:8080/x", "http://host:8080/x"),
        ];
        for (given, want) in cases {
            assert_eq!(userinfo(given), want, "{given}");
        }
        assert!(matches!(userinfo("http://host/x"), Cow::Borrowed(_)));
        assert!(has_userinfo("https://admin:pass@bmc"));
        assert!(!has_userinfo("https://bmc/redfish@v1"));
    }
}
