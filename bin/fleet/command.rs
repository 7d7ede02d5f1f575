//! Every command line fleet prints for a person to paste (resume, finish, follow, start, the
//! commands inside advice) is built here, by [`CommandLine`], and by nothing else.
//!
//! A server chooses many of the names such a command carries (the workspaces not attempted,
//! the workspace left stopped). Quoting alone does not make them safe: `--coder-url=http://x`
//! needs no quotes and a shell passes it to fleet as an option, which would send the token
//! elsewhere. So a printed command always reads `fleet SUBCOMMAND FLAGS… -- NAMES…`: every flag
//! first, then `--`, then the positional names, each quoted for a POSIX shell; and a name that
//! fleet's own parser would refuse (or that starts with `-`, or holds whitespace or a control
//! character) is not printed as a word at all: it is left out, and the output says so and why.

use crate::config_text::shell_word;
use fleet::text::{escape_one_line, is_unsafe_char};

/// What a positional name stands for: which of fleet's parsers must accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A Coder workspace: a UUID, `owner/name` or a name (`WorkspaceRef::parse`).
    CoderWorkspace,
    /// A Molecule workspace id (the check every Molecule request makes).
    MoleculeWorkspace,
    /// A Coder template: a UUID or a name (the rule a template selection checks).
    CoderTemplate,
}

/// A word that was not printed as part of a command, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeftOut {
    /// The word as it was given (a name, or a flag with its value).
    pub word: String,
    /// Why it is not part of the command.
    pub reason: String,
}

/// A command being built: `fleet` and its subcommand, flags, then `--` and names.
#[derive(Debug, Clone)]
pub struct CommandLine {
    path: Vec<&'static str>,
    flags: Vec<String>,
    names: Vec<String>,
    left_out: Vec<LeftOut>,
    needs_names: bool,
}

/// A command ready to print: the line (none when every name it needs was left out) and what
/// was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// The command line, words quoted for a POSIX shell.
    pub command: Option<String>,
    /// The words left out of it, with the reason.
    pub left_out: Vec<LeftOut>,
}

impl CommandLine {
    /// `fleet` followed by these subcommand words (`["coder", "restart"]`).
    pub fn new(subcommand: &[&'static str]) -> Self {
        let mut path = vec!["fleet"];
        path.extend_from_slice(subcommand);
        CommandLine {
            path,
            flags: Vec::new(),
            names: Vec::new(),
            left_out: Vec::new(),
            needs_names: false,
        }
    }

    /// A flag without a value (`--force`).
    pub fn flag(&mut self, flag: &'static str) -> &mut Self {
        self.flags.push(flag.to_string());
        self
    }

    /// A flag with its value (`--parallel 4`). A value that starts with `-` is joined to its
    /// flag (`--parameter=-x`), so that it cannot read as a flag of its own; a value holding a
    /// control character or a line break cannot be shown on one line and is left out, flag
    /// and all, with the reason.
    pub fn option(&mut self, flag: &'static str, value: &str) -> &mut Self {
        match option_words(flag, value) {
            Ok(words) => self.flags.push(words),
            Err(reason) => self.left_out.push(LeftOut {
                word: format!("{flag} {value}"),
                reason,
            }),
        }
        self
    }

    /// The command cannot run without a name (a restart, a show): when every name is left
    /// out, no command is printed.
    pub fn needs_names(&mut self) -> &mut Self {
        self.needs_names = true;
        self
    }

    /// A positional name, printed after `--` when fleet's parser for `kind` accepts it, else
    /// left out with the reason.
    pub fn name(&mut self, name: &str, kind: NameKind) -> &mut Self {
        match name_refusal(name, kind) {
            None => self.names.push(name.to_string()),
            Some(reason) => self.left_out.push(LeftOut {
                word: name.to_string(),
                reason,
            }),
        }
        self
    }

    /// Several names of the same kind, in order.
    pub fn names<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        kind: NameKind,
    ) -> &mut Self {
        for n in names {
            self.name(n, kind);
        }
        self
    }

    /// The command to print.
    pub fn build(&self) -> Printed {
        if self.needs_names && self.names.is_empty() {
            return Printed {
                command: None,
                left_out: self.left_out.clone(),
            };
        }
        let mut words: Vec<String> = self.path.iter().map(|w| w.to_string()).collect();
        words.extend(self.flags.iter().cloned());
        if !self.names.is_empty() {
            words.push("--".into());
            words.extend(self.names.iter().map(|n| shell_word(n)));
        }
        Printed {
            command: Some(words.join(" ")),
            left_out: self.left_out.clone(),
        }
    }
}

impl Printed {
    /// A sentence for a person: `To finish the job, run `fleet …``, with what was left out
    /// of it; or, when nothing is left to run, that no command is shown and why. `purpose`
    /// reads like `to finish the job`.
    pub fn sentence(&self, purpose: &str) -> String {
        match &self.command {
            Some(c) if self.left_out.is_empty() => format!("{}, run `{c}`", capitalized(purpose)),
            Some(c) => format!(
                "{}, run `{c}` ({})",
                capitalized(purpose),
                self.left_out_text()
            ),
            None => format!("No command is shown {purpose}: {}", self.left_out_text()),
        }
    }

    /// `left out of the command: "NAME" (REASON); …` (at most a few, then how many more).
    pub fn left_out_text(&self) -> String {
        const SHOWN: usize = 5;
        let mut parts: Vec<String> = self
            .left_out
            .iter()
            .take(SHOWN)
            .map(|l| format!("{} ({})", quoted(&l.word), l.reason))
            .collect();
        if self.left_out.len() > SHOWN {
            parts.push(format!("and {} more", self.left_out.len() - SHOWN));
        }
        format!("left out of the command: {}", parts.join("; "))
    }

    /// Puts the command under `key` in a JSON object and, when something was left out,
    /// `KEY_left_out` beside it (`[{"word", "reason"}]`).
    pub fn put_json(&self, object: &mut serde_json::Value, key: &str) {
        if let Some(c) = &self.command {
            object[key] = c.clone().into();
        }
        if !self.left_out.is_empty() {
            object[format!("{key}_left_out")] = serde_json::json!(self.left_out);
        }
    }
}

/// A flag and its value as one or two shell words, or why they cannot be printed.
pub fn option_words(flag: &str, value: &str) -> Result<String, String> {
    if value
        .chars()
        .any(|c| c.is_control() || is_line_break(c) || is_unsafe_char(c))
    {
        return Err("its value holds a control character or a line break; give it yourself".into());
    }
    Ok(if value.starts_with('-') {
        shell_word(&format!("{flag}={value}"))
    } else {
        format!("{flag} {}", shell_word(value))
    })
}

/// Why `name` may not be a word of a printed command, or `None` when it may.
pub fn name_refusal(name: &str, kind: NameKind) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_line_break(c) || is_unsafe_char(c))
    {
        return Some("it holds whitespace, a line break or a control character".into());
    }
    if name.starts_with('-') {
        return Some("it starts with '-', so a shell would pass it as an option".into());
    }
    let accepted = match kind {
        NameKind::CoderWorkspace => fleet::coder::WorkspaceRef::parse(name).is_ok(),
        NameKind::MoleculeWorkspace => fleet::molecule::check_workspace_id(name).is_ok(),
        NameKind::CoderTemplate => fleet::coder::Selection::Template {
            name: name.to_string(),
            all_owners: false,
        }
        .check()
        .is_ok(),
    };
    if accepted {
        None
    } else {
        Some(match kind {
            NameKind::CoderWorkspace => "fleet does not accept it as a workspace (a UUID, \
                                         owner/name or a name, of letters, digits, '-', '_', '.')"
                .into(),
            NameKind::MoleculeWorkspace => "fleet does not accept it as a workspace id (no '/', \
                                            '\\', '%' or dot segment)"
                .into(),
            NameKind::CoderTemplate => "fleet does not accept it as a template (a UUID or a name \
                                        of letters, digits, '-', '_', '.')"
                .into(),
        })
    }
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// A word as it is shown in a sentence: in double quotes, on one line, cut after 80
/// characters.
fn quoted(word: &str) -> String {
    const LONGEST: usize = 80;
    let cut: String = word.chars().take(LONGEST).collect();
    let more = if word.chars().count() > LONGEST {
        "…"
    } else {
        ""
    };
    format!("\"{}{more}\"", escape_one_line(&cut))
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_first_then_double_dash_then_names_fleet_accepts() {
        let mut c = CommandLine::new(&["coder", "restart"]);
        c.option("--parallel", "2")
            .option("--parameter", "-x=1")
            .option("--parameter", "motd=a\nb")
            .flag("--force")
            .needs_names()
            .names(
                [
                    "carol/web-01",
                    "--coder-url=http://x",
                    "a b",
                    "-rf",
                    "ok.name",
                ],
                NameKind::CoderWorkspace,
            );
        let p = c.build();
        assert_eq!(
            p.command.as_deref(),
            Some(
                "fleet coder restart --parallel 2 --parameter=-x=1 --force -- carol/web-01 ok.name"
            )
        );
        let left: Vec<&str> = p.left_out.iter().map(|l| l.word.as_str()).collect();
        assert_eq!(
            left,
            [
                "--parameter motd=a\nb",
                "--coder-url=http://x",
                "a b",
                "-rf"
            ]
        );
        assert!(
            p.sentence("to resume")
                .starts_with("To resume, run `fleet coder restart")
        );
        assert!(p.left_out_text().contains("\"--parameter motd=a\\nb\""));
    }

    #[test]
    fn without_a_name_it_needs_no_command_is_printed() {
        let p = CommandLine::new(&["molecule", "migration-status"])
            .flag("--wait")
            .needs_names()
            .name("ws/../x", NameKind::MoleculeWorkspace)
            .build();
        assert_eq!(p.command, None);
        assert!(
            p.sentence("to follow it").starts_with(
                "No command is shown to follow it: left out of the command: \"ws/../x\""
            ),
            "{}",
            p.sentence("to follow it")
        );
        let listed = CommandLine::new(&["coder", "list"]).build();
        assert_eq!(listed.command.as_deref(), Some("fleet coder list"));
    }
}
