//! Error plumbing shared by every layer: a boxed source type for adapters to keep the cause of a
//! failure (never flattened into a `String`), and a display of the whole cause chain for logs.

use std::fmt;

/// A boxed error kept as the `#[source]` of an adapter's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Boxes a message as an error, for causes that are only text (a malformed answer, say).
pub fn message(text: impl Into<String>) -> BoxError {
    text.into().into()
}

/// Displays an error and every source below it, `outer: inner: innermost` — for log lines, never
/// for response bodies.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BoxError);

    #[test]
    fn the_chain_shows_every_cause() {
        let e = Outer(message("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}
