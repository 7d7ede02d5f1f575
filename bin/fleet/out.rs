//! The only place that writes to stdout and stderr. A closed pipe (`fleet coder list | head`)
//! ends the output quietly instead of panicking, and no configured token is ever written:
//! whatever a server echoed, every token fleet was given is replaced by `<redacted>` here.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    borrow::Cow,
    io::{self, Write},
    sync::Mutex,
};

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Never writes `secret` (a token fleet was configured with) from now on.
pub fn never_print(secret: &fleet::Secret) {
    if !secret.is_redactable() {
        return;
    }
    if let Ok(mut secrets) = SECRETS.lock() {
        if !secrets.iter().any(|s| s == secret.expose()) {
            secrets.push(secret.expose().to_string());
        }
    }
}

fn redacted(text: &str) -> Cow<'_, str> {
    let Ok(secrets) = SECRETS.lock() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), "<redacted>"));
        }
    }
    out
}

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{}", redacted(text.as_ref()))
        .and_then(|_| out.flush())
        .is_err()
    {
        closed_pipe();
    }
}

/// Writes a value as pretty JSON to stdout.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        Err(e) => err(format!("error: cannot render JSON: {e}")),
    }
}

/// Writes one line to stderr.
pub fn err(text: impl AsRef<str>) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "{}", redacted(text.as_ref()));
}

/// Writes to stderr without a newline (a prompt).
pub fn prompt(text: impl AsRef<str>) {
    let mut e = io::stderr().lock();
    let _ = write!(e, "{}", redacted(text.as_ref()));
    let _ = e.flush();
}

fn closed_pipe() {
    // The reader went away: there is nobody left to tell. Exit like a well-behaved filter.
    std::process::exit(0);
}
