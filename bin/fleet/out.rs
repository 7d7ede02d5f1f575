//! The only place that writes to stdout and stderr. A closed pipe (`fleet coder list | head`)
//! ends the output quietly instead of panicking.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{}", text.as_ref())
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
    let _ = writeln!(e, "{}", text.as_ref());
}

/// Writes to stderr without a newline (a prompt).
pub fn prompt(text: impl AsRef<str>) {
    let mut e = io::stderr().lock();
    let _ = write!(e, "{}", text.as_ref());
    let _ = e.flush();
}

fn closed_pipe() {
    // The reader went away: there is nobody left to tell. Exit like a well-behaved filter.
    std::process::exit(0);
}
