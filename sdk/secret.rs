//! A token ([`Secret`]): its value never appears in `Debug`, `Display`, an error or a log line.
//! A floor module: it uses nothing of the crate, so the redactor (`text.rs`) and the error type
//! can use it without an import circle. Reading one from a file
//! ([`Secret::from_file`](crate::Secret::from_file)) is in `config.rs`.

use std::fmt;

/// The shortest token replaced wherever it appears in text a server sent.
const MIN_REDACTABLE: usize = 6;

/// A token. Its value never appears in `Debug`, `Display`, an error or a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token. Surrounding whitespace (a trailing newline from a file) is dropped.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().trim().to_string())
    }

    /// The token itself, for the one place that puts it in a header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the token is long enough to be told apart from ordinary text, so that it can
    /// be replaced wherever it appears (a 1-letter test token would blank every such letter).
    /// Every real token is far longer than this.
    pub fn is_redactable(&self) -> bool {
        self.0.chars().count() >= MIN_REDACTABLE
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
