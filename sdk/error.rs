//! The one error type of the library.

use std::time::Duration;

use crate::outcome::{Aftermath, BusyReason, Severity};

/// What went wrong, in terms a caller can act on.
///
/// The CLI maps each variant to an exit code, the MCP server to a tool error. No variant
/// ever holds a token: messages that came from a server are scrubbed of every configured
/// secret before they are stored here.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was invalid. Nothing was sent.
    #[error("{0}")]
    InvalidInput(String),

    /// A pre-flight check refused the operation before anything was changed
    /// (reads may have been sent; nothing that changes state was).
    #[error("{0}")]
    Refused(String),

    /// A control plane is not configured.
    #[error("{plane} is not configured: set {}", vars.join(" and "))]
    NotConfigured {
        /// Which control plane ("Molecule CP admin API", "Coder", …).
        plane: &'static str,
        /// The environment variables to set (each face says how else it takes them).
        vars: &'static [&'static str],
    },

    /// The server refused the credentials (401) or the permission (403).
    #[error("{message}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// What the server said, with a hint about which token to check.
        message: String,
    },

    /// The thing asked for does not exist.
    #[error("{message}")]
    NotFound {
        /// What the server said, or what fleet looked for.
        message: String,
    },

    /// The workspace named does not exist (or the credentials cannot see it), found out before
    /// anything was changed: the same answer on both planes, whoever asks.
    #[error("{message}")]
    UnknownWorkspace {
        /// What fleet looked for and what the control plane said; ends with the suggestion,
        /// when there is one.
        message: String,
        /// The closest name (by edit distance) among those fleet could list, when one is close.
        did_you_mean: Option<String>,
    },

    /// The server answered 409: something is already in progress.
    #[error("{message}")]
    Conflict {
        /// What the server said, plus what fleet learned about the running operation.
        message: String,
        /// The state of the operation already in progress, when fleet could read it.
        current_state: Option<String>,
    },

    /// The server answered with another error status. `message` is the server's words.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message (and detail), or a description of the unreadable body.
        message: String,
        /// Field-level problems the server listed (`field: detail`).
        validations: Vec<FieldProblem>,
    },

    /// The request did not reach the server or the answer did not come back.
    #[error("{0}")]
    Transport(String),

    /// A deadline passed while waiting. The remote operation may still be running.
    #[error("{message}")]
    Timeout {
        /// What timed out, what was seen last and what to do next.
        message: String,
        /// How long fleet waited.
        waited: Duration,
        /// The last state seen before the deadline.
        last_state: Option<String>,
    },

    /// The caller cancelled (Ctrl-C, an MCP cancellation). The remote operation was not
    /// cancelled; `message` says what state it was left in.
    #[error("{message}")]
    Interrupted {
        /// What was left behind and how to finish the job.
        message: String,
        /// The last state seen.
        last_state: Option<String>,
    },

    /// A request that changes state got no clear answer (an error status that is not a clear
    /// refusal, a connection reset, a timeout). fleet did not send it again: it read the state
    /// back, and `found` says what is true now.
    #[error("{message}")]
    Unconfirmed {
        /// What was sent, what came back, and what the state read back shows.
        message: String,
        /// What reading the state back found.
        found: ReadBack,
        /// The state read back, when there is one.
        current_state: Option<String>,
    },

    /// The remote operation ran and ended in failure.
    #[error("{message}")]
    OperationFailed {
        /// What failed, the server's reason, and what it means for the user.
        message: String,
        /// The final state.
        final_state: Option<String>,
    },

    /// `error` ended an operation that left something behind: `aftermath` says what, as a
    /// fact (a workspace left stopped and the operation that finishes the job, a build still
    /// running and what to follow). The CLI renders it as a command, fleet-mcp as a tool call.
    #[error("{error}")]
    Left {
        /// What went wrong (never another `Left`).
        error: Box<Error>,
        /// What is left.
        aftermath: Aftermath,
    },

    /// fleet left the workspace alone: someone (or an AI task) is at work in it, or it is a
    /// prebuilt or dormant workspace. Reads only were sent; nothing was changed.
    #[error("{workspace} skipped: {reason}{waited}; nothing was changed")]
    Busy {
        /// `owner/name`.
        workspace: String,
        /// Why.
        reason: BusyReason,
        /// " after waiting 5m for it to become idle", when fleet waited.
        waited: String,
    },

    /// `error`, with what the caller can do about it: which input to give, change or leave
    /// out, what to read to find the right value. Facts, not words: the CLI renders them as
    /// flags and commands, fleet-mcp as tool arguments and tool calls. The message of `error`
    /// stands on its own without them.
    #[error("{error}")]
    Advised {
        /// What went wrong (never another `Advised` or a `Left`).
        error: Box<Error>,
        /// What the caller can do, in order of preference (any one of them is enough).
        remedies: Vec<Remedy>,
    },
}

/// What a caller can do about a refusal or invalid input ([`Error::Advised`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "remedy", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Remedy {
    /// Give this input (or, when `value` is set, give it this value).
    Give {
        /// The input.
        input: Input,
        /// The value to give, when fleet knows it.
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Give exactly one of these inputs.
    GiveOneOf {
        /// The inputs.
        inputs: Vec<Input>,
    },
    /// Give this input a value from `min` to `max` (both included). For an input that is a
    /// duration ([`Input::is_seconds`]), in seconds.
    GiveWithin {
        /// The input.
        input: Input,
        /// The least value it takes.
        min: u64,
        /// The greatest value it takes.
        max: u64,
    },
    /// Leave this input out.
    LeaveOut {
        /// The input.
        input: Input,
    },
    /// Update this Coder workspace to its template's active version instead.
    UpdateToActive {
        /// `owner/name`.
        workspace: String,
    },
    /// Set this configuration variable (the environment both `fleet` and `fleet-mcp` read).
    Configure {
        /// The variable, e.g. `MOLECULE_CP_ADMIN_PREFIX`.
        variable: String,
        /// The values it takes, when there are few.
        #[serde(skip_serializing_if = "Option::is_none")]
        values: Option<String>,
    },
    /// Allow `http://` to a host that is not loopback (tokens then cross the network in
    /// clear: [`crate::HttpOptions::insecure_http`]), when that is really meant.
    AllowInsecureHttp,
    /// Read this: it shows the values to give.
    Look {
        /// What to read.
        at: Look,
    },
}

/// An input of an operation, by meaning; each face names it its own way (a flag, a tool
/// argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Input {
    /// The explicit confirmation a migration needs.
    Confirm,
    /// The source provider of a migration.
    From,
    /// The source instance id of a migration.
    FromInstanceId,
    /// Environment variables for a migrated workspace (`NAME` → value).
    Env,
    /// The Coder template version to build.
    TemplateVersion,
    /// Coder workspace parameter values (`NAME` → value).
    Parameters,
    /// Coder workspaces by name.
    Workspaces,
    /// Every outdated Coder workspace.
    AllOutdated,
    /// The Coder workspaces of one template.
    Template,
    /// Every owner's workspaces, not only the caller's.
    AllOwners,
    /// How many workspaces run at once.
    Parallel,
    /// Update workspaces in use (someone's recent activity, an AI task working, dormant).
    IncludeBusy,
    /// Update prebuilt workspaces.
    IncludePrebuilds,
    /// Wait up to a duration for busy workspaces to become idle.
    WaitForIdle,
    /// How many workspaces go first, before the rest (a canary).
    Canary,
    /// After how many failures a rollout starts no more.
    MaxFailures,
    /// How long a started Coder workspace's agents may take to be ready (a duration).
    ReadyTimeout,
    /// How long a caller waits for a long operation before it answers (a duration).
    Wait,
    /// How long a Molecule migration is followed before fleet answers that it still runs
    /// (a duration).
    MigrationTimeout,
}

impl Input {
    /// Every input, for a face to check that it can name each one.
    pub const ALL: &'static [Input] = &[
        Input::Confirm,
        Input::From,
        Input::FromInstanceId,
        Input::Env,
        Input::TemplateVersion,
        Input::Parameters,
        Input::Workspaces,
        Input::AllOutdated,
        Input::Template,
        Input::AllOwners,
        Input::Parallel,
        Input::IncludeBusy,
        Input::IncludePrebuilds,
        Input::WaitForIdle,
        Input::Canary,
        Input::MaxFailures,
        Input::ReadyTimeout,
        Input::Wait,
        Input::MigrationTimeout,
    ];

    /// True when the input is a duration: its [`Remedy::GiveWithin`] bounds are seconds.
    pub fn is_seconds(self) -> bool {
        matches!(
            self,
            Input::ReadyTimeout | Input::Wait | Input::MigrationTimeout
        )
    }

    /// The input in words both faces share ("parallel", "ready timeout"), for messages.
    pub fn words(self) -> &'static str {
        match self {
            Input::Confirm => "confirm",
            Input::From => "from",
            Input::FromInstanceId => "from instance id",
            Input::Env => "env",
            Input::TemplateVersion => "template version",
            Input::Parameters => "parameters",
            Input::Workspaces => "workspaces",
            Input::AllOutdated => "all outdated",
            Input::Template => "template",
            Input::AllOwners => "all owners",
            Input::Parallel => "parallel",
            Input::IncludeBusy => "include busy",
            Input::IncludePrebuilds => "include prebuilds",
            Input::WaitForIdle => "wait for idle",
            Input::Canary => "canary",
            Input::MaxFailures => "max failures",
            Input::ReadyTimeout => "ready timeout",
            Input::Wait => "wait",
            Input::MigrationTimeout => "migration timeout",
        }
    }
}

/// Whole seconds in words (`90s` → `1m 30s`), as both faces' messages say a duration.
fn seconds_words(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// Something to read that shows the values to give.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(tag = "what", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Look {
    /// The Coder workspaces the token can see.
    Workspaces,
    /// One Coder workspace: the versions it runs and its template's active version. `None`
    /// when the workspace is not known (any workspace of the template shows them).
    Workspace {
        /// `owner/name`, when known.
        workspace: Option<String>,
    },
    /// One Coder template version: its import job.
    TemplateVersion {
        /// The version's ID.
        id: uuid::Uuid,
    },
}

/// What fleet found when it read the state back after a request that changes state got no
/// clear answer ([`Error::Unconfirmed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadBack {
    /// The operation is under way: the request may well have started it. Follow it; do not
    /// send the request again.
    UnderWay,
    /// Nothing is under way and the state is what it was before: the request started nothing.
    NothingStarted,
    /// An operation started since the request has already ended (see `current_state`).
    AlreadyEnded,
    /// The state could not be read either: check it before sending the request again.
    Unknown,
}

/// A field-level validation problem reported by a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FieldProblem {
    /// The field.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl Error {
    /// `error`, with what it left behind.
    pub fn left(error: Error, aftermath: Aftermath) -> Error {
        Error::Left {
            error: Box::new(error.root().clone()),
            aftermath,
        }
    }

    /// `input` was given `given`, outside `min ..= max` (seconds for a duration): invalid
    /// input (nothing sent), with the remedy that names the range. One wording for every
    /// input and both faces; each face renders the remedy in its own names.
    pub fn out_of_range(input: Input, given: u64, min: u64, max: u64) -> Error {
        let say = |v: u64| match input.is_seconds() {
            true => seconds_words(v),
            false => v.to_string(),
        };
        Error::advised(
            Error::InvalidInput(format!(
                "{} {} is out of range: it must be {} to {}; nothing was sent",
                input.words(),
                say(given),
                say(min),
                say(max)
            )),
            vec![Remedy::GiveWithin { input, min, max }],
        )
    }

    /// `error`, with what the caller can do about it.
    pub fn advised(error: Error, remedies: Vec<Remedy>) -> Error {
        if remedies.is_empty() {
            return error;
        }
        Error::Advised {
            error: Box::new(error.root().clone()),
            remedies,
        }
    }

    /// The error itself, without what it left behind or what can be done about it.
    pub fn root(&self) -> &Error {
        match self {
            Error::Left { error, .. } | Error::Advised { error, .. } => error.root(),
            other => other,
        }
    }

    /// What the caller can do about the error, when it says (empty otherwise).
    pub fn remedies(&self) -> &[Remedy] {
        match self {
            Error::Advised { remedies, .. } => remedies,
            _ => &[],
        }
    }

    /// What the failed operation left behind, when it says.
    pub fn aftermath(&self) -> Option<&Aftermath> {
        match self {
            Error::Left { aftermath, .. } => Some(aftermath),
            _ => None,
        }
    }

    /// A short, stable name for the variant (`invalid_input`, `timeout`, …), for JSON output.
    pub fn kind(&self) -> &'static str {
        match self.root() {
            Error::InvalidInput(_) => "invalid_input",
            Error::Refused(_) => "refused",
            Error::Busy { .. } => "skipped",
            Error::NotConfigured { .. } => "not_configured",
            Error::Unauthorized { .. } => "unauthorized",
            Error::NotFound { .. } | Error::UnknownWorkspace { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Api { .. } => "api_error",
            Error::Transport(_) => "transport",
            Error::Timeout { .. } => "timeout",
            Error::Interrupted { .. } => "interrupted",
            Error::Unconfirmed { .. } => "unconfirmed",
            Error::OperationFailed { .. } => "operation_failed",
            // root() looks through these two.
            Error::Left { .. } => "left",
            Error::Advised { .. } => "advised",
        }
    }

    /// True when nothing was changed on any server because of the failed call
    /// (invalid input, not configured, refused by a pre-flight check).
    pub fn nothing_changed(&self) -> bool {
        matches!(
            self.root(),
            Error::InvalidInput(_)
                | Error::Refused(_)
                | Error::Busy { .. }
                | Error::NotConfigured { .. }
                | Error::UnknownWorkspace { .. }
                | Error::Unconfirmed {
                    found: ReadBack::NothingStarted,
                    ..
                }
        )
    }

    /// For [`Error::Unconfirmed`]: the same error with `next(found)` appended, a face's words
    /// for the next step (a command line, a tool to call). Any other error comes back as it is.
    pub fn with_next_step(self, next: impl FnOnce(ReadBack) -> String) -> Error {
        match self {
            Error::Unconfirmed {
                message,
                found,
                current_state,
            } => Error::Unconfirmed {
                message: format!("{message}. {}", next(found)),
                found,
                current_state,
            },
            other => other,
        }
    }

    /// An unknown workspace: `message`, then "did you mean X?" when one of `names` is close to
    /// `typed` (see [`crate::text::closest`]).
    pub fn unknown_workspace<'a>(
        message: String,
        typed: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Error {
        let did_you_mean = crate::text::closest(typed, names);
        let message = match &did_you_mean {
            Some(name) => format!("{message}; did you mean {name}?"),
            None => message,
        };
        Error::UnknownWorkspace {
            message,
            did_you_mean,
        }
    }

    /// The name an [`Error::UnknownWorkspace`] suggests, when it does.
    pub fn did_you_mean(&self) -> Option<&str> {
        match self.root() {
            Error::UnknownWorkspace { did_you_mean, .. } => did_you_mean.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status the server answered, when the error came from one.
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            Error::Unauthorized { status, .. } | Error::Api { status, .. } => Some(*status),
            Error::NotFound { .. } | Error::UnknownWorkspace { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            _ => None,
        }
    }

    /// The same error with its message replaced by `f(message)` (to add what fleet found out,
    /// or what to do). [`Error::Left`] and [`Error::Advised`] map the message of the error they
    /// hold and keep what was left behind, or what to do. [`Error::NotConfigured`] has no message of its own (its text is made
    /// from its fields): it comes back unchanged and `f` is not called.
    pub fn map_message(mut self, f: impl FnOnce(String) -> String) -> Error {
        if let Some(message) = self.message_mut() {
            *message = f(std::mem::take(message));
        }
        self
    }

    /// The message [`Error::map_message`] maps.
    fn message_mut(&mut self) -> Option<&mut String> {
        match self {
            Error::InvalidInput(message)
            | Error::Refused(message)
            | Error::Transport(message)
            | Error::Unauthorized { message, .. }
            | Error::NotFound { message, .. }
            | Error::UnknownWorkspace { message, .. }
            | Error::Conflict { message, .. }
            | Error::Api { message, .. }
            | Error::Timeout { message, .. }
            | Error::Interrupted { message, .. }
            | Error::Unconfirmed { message, .. }
            | Error::OperationFailed { message, .. } => Some(message),
            Error::Left { error, .. } | Error::Advised { error, .. } => error.message_mut(),
            Error::NotConfigured { .. } | Error::Busy { .. } => None,
        }
    }
}

// Here rather than in `outcome.rs`, so that `outcome.rs` stays a floor below this module.
impl Severity {
    /// How bad ending in `e` is.
    pub fn of(e: &Error) -> Severity {
        match e.root() {
            Error::Timeout { .. } => Severity::TimedOut,
            Error::Interrupted { .. } => Severity::Interrupted,
            // The control plane did not confirm a start: a failure even when reading back
            // found nothing started (it was not refused before sending).
            Error::Unconfirmed { .. } => Severity::Failed,
            e if e.nothing_changed() => Severity::Refused,
            _ => Severity::Failed,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_message_changes_only_the_message() {
        let add = |m: String| format!("{m}; more");
        let e = Error::Api {
            status: 502,
            message: "bad gateway".into(),
            validations: vec![FieldProblem {
                field: "f".into(),
                detail: "d".into(),
            }],
        }
        .map_message(add);
        let Error::Api {
            status,
            message,
            validations,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!((*status, message.as_str()), (502, "bad gateway; more"));
        assert_eq!(validations.len(), 1);
        assert_eq!(
            Error::Transport("reset".into())
                .map_message(add)
                .to_string(),
            "reset; more"
        );
        let timeout = Error::Timeout {
            message: "waited".into(),
            waited: Duration::from_secs(3),
            last_state: Some("running".into()),
        }
        .map_message(add);
        assert!(matches!(
            &timeout,
            Error::Timeout { message, waited, last_state }
                if message == "waited; more"
                    && *waited == Duration::from_secs(3)
                    && last_state.as_deref() == Some("running")
        ));
    }

    #[test]
    fn map_message_of_left_maps_the_inner_error_and_keeps_the_aftermath() {
        let left = Error::left(
            Error::NotFound {
                message: "gone".into(),
            },
            Aftermath::Unknown,
        );
        let mapped = left.map_message(|m| format!("{m}; more"));
        assert_eq!(mapped.to_string(), "gone; more");
        assert_eq!(mapped.kind(), "not_found");
        assert_eq!(mapped.aftermath(), Some(&Aftermath::Unknown));
    }

    #[test]
    fn map_message_keeps_the_remedies_of_an_advised_error() {
        let e = Error::advised(
            Error::InvalidInput("no workspace given".into()),
            vec![Remedy::Give {
                input: Input::Workspaces,
                value: None,
            }],
        );
        let mapped = e.map_message(|m| format!("{m}; nothing was sent"));
        assert_eq!(mapped.to_string(), "no workspace given; nothing was sent");
        assert!(matches!(mapped.root(), Error::InvalidInput(_)));
        assert_eq!(mapped.remedies().len(), 1);
    }

    #[test]
    fn an_advice_without_remedies_is_the_error_itself() {
        let e = Error::advised(Error::Refused("no".into()), vec![]);
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
    }

    #[test]
    fn every_input_is_in_all() {
        // A new input must be added to Input::ALL (the faces' tests go over it): this match
        // stops compiling until it is handled here.
        for input in Input::ALL {
            match input {
                Input::Confirm
                | Input::From
                | Input::FromInstanceId
                | Input::Env
                | Input::TemplateVersion
                | Input::Parameters
                | Input::Workspaces
                | Input::AllOutdated
                | Input::Template
                | Input::AllOwners
                | Input::Parallel
                | Input::IncludeBusy
                | Input::IncludePrebuilds
                | Input::WaitForIdle
                | Input::Canary
                | Input::MaxFailures
                | Input::ReadyTimeout
                | Input::Wait
                | Input::MigrationTimeout => {}
            }
        }
        assert_eq!(Input::ALL.len(), 19);
    }

    #[test]
    fn map_message_leaves_not_configured_alone() {
        let e = Error::NotConfigured {
            plane: "Coder",
            vars: &["CODER_URL"],
        };
        let before = e.to_string();
        let after = e.map_message(|_| unreachable!("NotConfigured has no message"));
        assert_eq!(after.to_string(), before);
    }
}
