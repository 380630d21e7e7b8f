//! Error text for people and logs, the same in every command.

/// An error and its causes on one line: `outer: inner: root`. A cause whose
/// text the message before it already ends with is said once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    match crate::truncate::message(&s) {
        std::borrow::Cow::Owned(short) => short,
        std::borrow::Cow::Borrowed(_) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct E {
        msg: String,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(msg: &str, source: Option<E>) -> E {
        E { msg: msg.into(), source: source.map(Box::new) }
    }

    #[test]
    fn causes_follow_in_order_and_a_repeated_one_is_said_once() {
        let root = e("no route to host", None);
        assert_eq!(chain(&e("connect bmc", Some(e("tcp", Some(root))))), "connect bmc: tcp: no route to host");
        let repeated = e("open x: denied", Some(e("denied", None)));
        assert_eq!(chain(&repeated), "open x: denied");
    }
}
