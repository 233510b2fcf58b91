//! Error helpers every layer shares: printing an error with its whole chain of sources.
//!
//! It sits below every other module of the crate (it imports none of them), so the agent, the
//! election backends and the command line print errors the same way without importing each other.

/// An error and its sources, `outer: inner: innermost` (thiserror's `Display` shows one level).
/// A source whose text the chain already ends with is not repeated.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: inner")]
    struct Repeats(#[source] Inner);

    #[test]
    fn the_chain_names_every_source_once() {
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner");
        assert_eq!(error_chain(&Repeats(Inner)), "wrapped: inner");
    }
}
