//! What both binaries write for people and logs passes through here: every configured token
//! redacted ([`never_print`]) and every control or bidi character escaped visibly, so that no
//! token leaves the process and no server text controls a terminal. Log lines (tracing) are
//! written by [`log_writer`], one event at a time.

use std::{
    borrow::Cow,
    io::{self, Write},
    sync::{LazyLock, RwLock},
};

use fleet::text::{Redactor, escape_controls};

static REDACTOR: LazyLock<RwLock<Redactor>> = LazyLock::new(Default::default);

/// Never writes `secret` (a token this process was given) from now on.
pub fn never_print(secret: &fleet::Secret) {
    if let Ok(mut r) = REDACTOR.write() {
        r.add(secret);
    }
}

/// Runs `f` with the redactor of every token given so far.
pub fn with_redactor<T>(f: impl FnOnce(&Redactor) -> T) -> T {
    match REDACTOR.read() {
        Ok(r) => f(&r),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// `text` with every token replaced by `<redacted>`.
pub fn redacted(text: &str) -> Cow<'_, str> {
    with_redactor(|r| match r.redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(s) => Cow::Owned(s),
    })
}

/// `text` as shown to a person: tokens redacted, control and bidi characters escaped visibly.
pub fn safe(text: &str) -> Cow<'_, str> {
    match redacted(text) {
        Cow::Borrowed(t) => escape_controls(t),
        Cow::Owned(t) => Cow::Owned(escape_controls(&t).into_owned()),
    }
}

/// The writer of log lines (tracing's `with_writer`): stderr, each event redacted and escaped.
/// Log lines carry no colour codes (`with_ansi(false)`), so none needs a raw control character.
pub fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// See [`log_writer`]: buffers one event, writes it safely when dropped.
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        // One event, one line: a line break inside it (a server's log line, an error body) is
        // shown escaped, never as a line of its own.
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let shown = safe(body);
        let shown = shown.replace('\n', "\\n");
        let mut e = io::stderr().lock();
        let _ = e.write_all(shown.as_bytes());
        let _ = e.write_all(end.as_bytes());
    }
}
