//! Text a server sent, made safe to show: control characters escaped visibly, tokens redacted.
//!
//! A server controls many strings fleet shows (workspace and template names, job errors, build
//! logs, migration details, error bodies). Written raw to a terminal, an ESC sequence can change
//! the title, clear the screen or plant a link, a CR can overwrite a verdict, and a bidi override
//! can reorder what is read. [`escape_controls`] makes each such character visible instead
//! (`\x1b`, `\r`, `\u{202e}`). [`Redactor`] replaces every configured token wherever it appears,
//! in raw text or in a JSON value, before anything is written.

use std::{borrow::Cow, fmt::Write as _};

use serde_json::Value;

use crate::secret::Secret;

/// What replaces a token in output.
pub const REDACTED: &str = "<redacted>";

/// True for a character that can control a terminal or reorder displayed text: C0 controls
/// except tab and newline, DEL, C1 controls (U+0080–U+009F), the bidi controls (U+061C,
/// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), and the Unicode line and paragraph
/// separators (U+2028, U+2029), which some terminals and viewers break a line at.
pub fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every [unsafe character](is_unsafe_char) written as a visible escape: `\x1b` for
/// C0 controls and DEL (`\r` for CR), `\u{9b}` for C1 controls, `\u{202e}` for bidi controls.
/// Tab and newline stay. Borrowed when there is nothing to escape (the usual case).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_unsafe_char(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `text` made to stay on one line: like [`escape_controls`], and a newline written as `\n`
/// too. For server text shown inside one line of fleet's own (a report row, a log line, a
/// name in a sentence), where a line break would start a line that looks like fleet's.
pub fn escape_one_line(text: &str) -> Cow<'_, str> {
    if !text.contains('\n') {
        return escape_controls(text);
    }
    Cow::Owned(escape_controls(text).replace('\n', "\\n"))
}

/// Replaces configured tokens with [`REDACTED`] in text and in JSON values. A token is looked
/// for as it is and in the escaped forms it takes in JSON or `Debug` output (a token holding
/// `"` or `\` reads `\"`, `\\` there), so that no way of writing it slips through. Tokens too
/// short to tell apart from ordinary text ([`Secret::is_redactable`]) are not looked for.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every token, longest first (so that a longer form wins over a shorter one).
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for these tokens.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut r = Redactor::default();
        for s in secrets {
            r.add(s);
        }
        r
    }

    /// Looks for `secret` too from now on.
    pub fn add(&mut self, secret: &Secret) {
        if !secret.is_redactable() {
            return;
        }
        let raw = secret.expose();
        let json = serde_json::to_string(raw).unwrap_or_default();
        let json = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(raw);
        let forms = [
            raw.to_string(),
            json.to_string(),
            raw.escape_debug().to_string(),
            escape_controls(raw).into_owned(),
        ];
        for form in forms {
            if !form.is_empty() && !self.needles.contains(&form) {
                self.needles.push(form);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// True when no token is looked for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every token replaced. Borrowed when none appears (the usual case).
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
            }
        }
        out
    }

    /// Redacts every string of `value` (object keys too), before it is serialized, so that
    /// JSON escaping cannot hide a token from redaction.
    pub fn redact_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(clean) = self.redact(s) {
                    *s = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if let Some(mut v) = map.remove(&key) {
                        self.redact_json(&mut v);
                        map.insert(self.redact(&key).into_owned(), v);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `value` redacted and turned back into its type, when it held a token (checked on its
    /// JSON text first, so that the usual case costs one serialization). `None` when the
    /// redacted value does not turn back into exactly the redacted JSON (it no longer fits the
    /// type, or the type would drop or change part of it); the caller must then withhold it.
    pub fn redact_serde<T>(&self, value: T) -> Option<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        if self.is_empty() {
            return Some(value);
        }
        let text = serde_json::to_string(&value).ok()?;
        if !self.needles.iter().any(|n| text.contains(n.as_str())) {
            return Some(value);
        }
        let mut json: Value = serde_json::from_str(&text).ok()?;
        self.redact_json(&mut json);
        let typed: T = serde_json::from_value(json.clone()).ok()?;
        (serde_json::to_value(&typed).ok()? == json).then_some(typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bidi_but_keeps_tab_and_newline() {
        let hostile =
            "ok\x1b]0;pwned\x07 \r\u{9b}2J \u{202e}evil\u{2066}\u{200f}\u{61c}\x7f\tend\n";
        let shown = escape_controls(hostile);
        assert_eq!(
            shown,
            "ok\\x1b]0;pwned\\x07 \\r\\u{9b}2J \\u{202e}evil\\u{2066}\\u{200f}\\u{61c}\\x7f\tend\n"
        );
        assert!(!shown.chars().any(is_unsafe_char));
        assert!(matches!(escape_controls("plain é ü 🙂"), Cow::Borrowed(_)));
    }

    #[test]
    fn one_line_escapes_every_line_break_visibly() {
        let spoof = "building\nalice/dev restarted on version v9\r\u{2028}x\u{2029}y\u{85}z\tend";
        let shown = escape_one_line(spoof);
        assert_eq!(
            shown,
            "building\\nalice/dev restarted on version v9\\r\\u{2028}x\\u{2029}y\\u{85}z\tend"
        );
        assert_eq!(shown.lines().count(), 1);
        assert!(matches!(escape_one_line("plain é"), Cow::Borrowed(_)));
        // Text that may span lines keeps its newlines but not the Unicode separators.
        assert_eq!(escape_controls("a\nb\u{2028}c"), "a\nb\\u{2028}c");
    }

    #[test]
    fn redacts_tokens_in_every_escaped_form_and_inside_json_values() {
        let r = Redactor::new([&Secret::new(r#"tok"en\abc"#), &Secret::new("k")]);
        assert_eq!(r.redact(r#"a tok"en\abc b"#), "a <redacted> b");
        assert_eq!(r.redact(r#""tok\"en\\abc""#), "\"<redacted>\"");
        assert_eq!(
            r.redact("keep k"),
            "keep k",
            "short tokens are not looked for"
        );
        let mut v = serde_json::json!({"detail": [r#"x tok"en\abc"#], r#"tok"en\abc"#: 1});
        r.redact_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"detail": ["x <redacted>"], "<redacted>": 1})
        );
    }

    #[test]
    fn redact_serde_rebuilds_the_value_without_the_token_or_withholds_it() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Report {
            detail: String,
            step: u32,
        }
        let r = Redactor::new([&Secret::new(r#"tok"en\abc"#)]);
        let clean = r.redact_serde(Report {
            detail: r#"echo tok"en\abc"#.into(),
            step: 3,
        });
        let expected = Report {
            detail: "echo <redacted>".into(),
            step: 3,
        };
        assert_eq!(clean, Some(expected));
        // A type that cannot carry the redacted text exactly is withheld, not sent half-clean.
        #[derive(serde::Serialize, serde::Deserialize, Debug)]
        enum Kind {
            #[serde(rename = "tok\"en\\abc")]
            Token,
        }
        assert!(r.redact_serde(Kind::Token).is_none());
    }
}

/// The name among `names` closest to `typed` by edit distance (Damerau–Levenshtein, ignoring
/// case), when it is close enough to be a typo: at most a third of the longer of the two
/// (at least 1, at most 3) edits away. `None` when `typed` is itself one of the names or none
/// is close. Ties go to the first name given.
pub fn closest<'a>(typed: &str, names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // The edit distance costs length × length in time and memory: a name whose length
    // differs by more than the largest bound (3) cannot be close, and is never measured (a
    // server's list may hold very long strings); neither is a very long typed name.
    const MAX_LEN: usize = 256;
    let typed = typed.trim().to_lowercase();
    let typed_len = typed.chars().count();
    if typed.is_empty() || typed_len > MAX_LEN {
        return None;
    }
    let mut best: Option<(usize, &str)> = None;
    for name in names {
        if name.len() > 4 * (MAX_LEN + 3) {
            continue;
        }
        let lower = name.to_lowercase();
        if lower == typed {
            return None;
        }
        let name_len = lower.chars().count();
        if name_len.abs_diff(typed_len) > 3 {
            continue;
        }
        let longest = name_len.max(typed_len);
        let bound = (longest / 3).clamp(1, 3);
        let d = strsim::damerau_levenshtein(&typed, &lower);
        if d <= bound && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, name));
        }
    }
    best.map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod closest_tests {
    use super::closest;

    #[test]
    fn a_typo_is_matched_and_a_stranger_is_not() {
        let names = ["ws-aws-demo", "ws-gcp-demo", "ws-hetzner-demo"];
        assert_eq!(
            closest("ws-aws-dmeo", names).as_deref(),
            Some("ws-aws-demo")
        );
        assert_eq!(closest("WS-GCP-DEM", names).as_deref(), Some("ws-gcp-demo"));
        assert_eq!(closest("ws-aws-demo", names), None);
        assert_eq!(closest("zz", names), None);
        assert_eq!(
            closest("alice/dve", ["alice/dev", "bob/dev"]).as_deref(),
            Some("alice/dev")
        );
        assert_eq!(closest("", names), None);
        // A very long name from a server is skipped, not measured.
        let long = "w".repeat(1 << 20);
        assert_eq!(
            closest("ws-aws-dmeo", [long.as_str(), "ws-aws-demo"]).as_deref(),
            Some("ws-aws-demo")
        );
    }
}
