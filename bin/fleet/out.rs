//! The only place that writes to stdout and stderr. A closed pipe (`fleet coder list | head`)
//! ends the output quietly instead of panicking, and whatever a server sent:
//! - no configured token is ever written: every token fleet was given is replaced by
//!   `<redacted>` here, in text before it is written and in JSON before it is serialized (so
//!   that JSON escaping cannot hide a token holding `"` or `\`);
//! - no server text controls the terminal: in text, control characters (ESC, CR, C1, DEL…) and
//!   bidi controls are escaped visibly (`\x1b`, `\r`, `\u{202e}`); in JSON they are `\u` escapes.
//!
//! The progress display (indicatif) draws through [`progress_target`], which applies the same
//! two rules to every line it draws; the log lines (tracing) go through [`log_writer`]. The
//! only colour fleet writes is its own verdict word in a report row ([`row_with_verdict`]),
//! and only when stdout is a terminal and `NO_COLOR` is unset; never around server text.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

use fleet::text::is_unsafe_char;

pub use crate::safe_text::{log_writer, never_print};
use crate::safe_text::{safe, with_redactor};

/// `text` as fleet shows it: tokens redacted, control and bidi characters escaped visibly.
/// Use it for text handed to something that writes on its own (a progress bar's message).
pub fn shown(text: &str) -> String {
    safe(text).into_owned()
}

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) {
    write_stdout(&safe(text.as_ref()));
}

fn write_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
        closed_pipe();
    }
}

/// How a verdict reads: well, badly, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Done, or nothing to do (green).
    Good,
    /// Failed or unhealthy (red).
    Bad,
    /// Not attempted, interrupted, … (yellow).
    Neutral,
}

/// True when a verdict may be coloured: stdout is a terminal and `NO_COLOR` is unset (or
/// empty, as no-color.org says).
fn colour() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes one report row to stdout: `before`, the verdict word padded to `width`, `after`.
/// Every part is redacted and escaped like [`line`]; only the verdict word (fleet's own) is
/// coloured, and only when [`colour`] allows.
pub fn row_with_verdict(before: &str, verdict: &str, width: usize, tone: Tone, after: &str) {
    let word = safe(verdict);
    let pad = " ".repeat(width.saturating_sub(word.chars().count()));
    let word = if colour() {
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Neutral => "33",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    } else {
        word.into_owned()
    };
    write_stdout(&format!("{}{word}{pad}{}", safe(before), safe(after)));
}

/// Writes a value as pretty JSON to stdout: every string redacted first, then serialized with
/// control and bidi characters as `\u` escapes (the same JSON value, safe on a terminal).
pub fn json<T: serde::Serialize + ?Sized>(value: &T) {
    match safe_json(value) {
        Ok(text) => write_stdout(&text),
        Err(e) => err(format!("error: cannot render JSON: {e}")),
    }
}

fn safe_json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    // The usual case holds no token: write the value as it is (its fields in their order).
    let compact = serde_json::to_string(value)?;
    if with_redactor(|r| matches!(r.redact(&compact), std::borrow::Cow::Borrowed(_))) {
        return pretty_safe_json(value);
    }
    let mut value = serde_json::to_value(value)?;
    with_redactor(|r| r.redact_json(&mut value));
    pretty_safe_json(&value)
}

fn pretty_safe_json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, SafeJson::default());
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(buf).unwrap_or_default())
}

/// Writes one line to stderr.
pub fn err(text: impl AsRef<str>) {
    let mut e = io::stderr().lock();
    let _ = writeln!(e, "{}", safe(text.as_ref()));
}

/// Writes to stderr without a newline (a prompt).
pub fn prompt(text: impl AsRef<str>) {
    let mut e = io::stderr().lock();
    let _ = write!(e, "{}", safe(text.as_ref()));
    let _ = e.flush();
}

fn closed_pipe() {
    // The reader went away: there is nobody left to tell. Exit like a well-behaved filter.
    std::process::exit(0);
}

/// Where progress bars draw: stderr, every drawn line redacted and escaped like [`err`].
/// Set it on every bar and multi-bar (`ProgressBar::with_draw_target`,
/// `MultiProgress::with_draw_target`); messages set on a bar should be [`shown`] first too, so
/// that indicatif measures the width of what is drawn.
pub fn progress_target() -> indicatif::ProgressDrawTarget {
    indicatif::ProgressDrawTarget::term_like_with_hz(
        Box::new(SafeTerm(console::Term::stderr())),
        20,
    )
}

/// The terminal under the progress display. indicatif moves the cursor through the methods of
/// [`indicatif::TermLike`] and writes a lone `\r` itself; everything else it writes is text
/// (messages, prefixes, printed lines) and is redacted and escaped.
#[derive(Debug)]
struct SafeTerm(console::Term);

impl indicatif::TermLike for SafeTerm {
    fn width(&self) -> u16 {
        self.0.size().1
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        self.0.write_line(&safe(s))
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        if s == "\r" {
            return self.0.write_str(s);
        }
        self.0.write_str(&safe(s))
    }
    fn clear_line(&self) -> io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A JSON formatter that writes pretty JSON and escapes, inside strings, the characters that
/// serde_json leaves raw but a terminal acts on (DEL, C1, bidi controls) as `\uXXXX`.
#[derive(Default)]
struct SafeJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for SafeJson {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|(_, c)| is_unsafe_char(*c)) {
            writer.write_all(&rest.as_bytes()[..i])?;
            write!(writer, "\\u{:04x}", c as u32)?;
            rest = &rest[i + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}
