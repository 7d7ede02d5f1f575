//! Who is at work in a workspace: the rule that leaves a workspace alone when stopping it would
//! pull it from under someone (or something) at work.
//!
//! A workspace is left alone ([`BusyReason`]) when:
//! - it is a prebuilt workspace (`is_prebuild`: Coder's reconciler updates those);
//! - it is dormant (`dormant_at` set: not accessible, awaiting deletion);
//! - an AI task is working in it (`latest_app_status.state == "working"`, whoever owns it);
//! - it belongs to someone other than the caller (`GET /users/me`) and was used within
//!   [`BusyRules::idle_for`] (`last_used_at`, bumped by Coder from the agents' activity: SSH,
//!   apps, port forwards, with about a minute's delay).
//!
//! Nobody is at work in a stopped workspace: the last two rules apply only while it runs (or a
//! build is under way). [`BusyRules::include_busy`] lifts every rule but the prebuild one,
//! which only [`BusyRules::include_prebuilds`] lifts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    CoderClient, WorkspaceStatus,
    model::{BusyRules, CoderEvent, WorkspaceInfo},
    types,
};
use crate::{Error, Input, Remedy, Result, operation::Control, outcome::BusyReason};

crate::open_enum! {
    /// What an app (an AI agent) in a workspace last reported (codersdk.WorkspaceAppStatusState).
    pub enum AppStatusState {
        /// At work.
        Working = "working",
        /// Waiting for input.
        Idle = "idle",
        /// Done.
        Complete = "complete",
        /// It failed.
        Failure = "failure",
    }
}

/// Coder's `uuid.NullUUID` (a workspace's `task_id`): its description says an object
/// `{uuid, valid}`, a server sends a UUID string or null. All three are read; anything else
/// is no UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NullUuid(pub Option<Uuid>);

impl Serialize for NullUuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for NullUuid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let parse = |s: &str| Uuid::parse_str(s).ok();
        Ok(NullUuid(match &v {
            serde_json::Value::String(s) => parse(s),
            serde_json::Value::Object(o) => match (o.get("uuid"), o.get("valid")) {
                (Some(serde_json::Value::String(s)), Some(serde_json::Value::Bool(true))) => {
                    parse(s)
                }
                _ => None,
            },
            _ => None,
        }))
    }
}

impl std::fmt::Display for NullUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("null"),
        }
    }
}

/// The most bytes of an AI task's status message a reason carries.
const TASK_MESSAGE_MAX_BYTES: usize = 200;

/// What the caller can give to go on anyway: here, beside the rule, since the error floor
/// ([`crate::outcome`]) that holds [`BusyReason`] knows no inputs.
impl BusyReason {
    /// What the caller can give to go on anyway.
    pub fn remedies(&self) -> Vec<Remedy> {
        let give = |input| Remedy::Give { input, value: None };
        match self {
            BusyReason::Prebuild => vec![give(Input::IncludePrebuilds)],
            BusyReason::Dormant { .. } => vec![give(Input::IncludeBusy)],
            _ => vec![give(Input::WaitForIdle), give(Input::IncludeBusy)],
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// True while someone can be at work in it: it runs, or a build is under way.
fn may_be_at_work(ws: &types::Workspace) -> bool {
    let status = ws.latest_build.as_ref().and_then(|b| b.status.clone());
    !matches!(
        status,
        Some(
            WorkspaceStatus::Stopped
                | WorkspaceStatus::Failed
                | WorkspaceStatus::Canceled
                | WorkspaceStatus::Deleted
        )
    )
}

/// When someone else's activity counts, the time it was seen, if within `rules.idle_for` of
/// `now`.
fn recent_use(
    ws: &types::Workspace,
    rules: &BusyRules,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, u64)> {
    if rules.include_busy || !may_be_at_work(ws) {
        return None;
    }
    let used = ws.last_used_at?;
    let ago = (now - used).num_seconds().max(0) as u64;
    (ago < rules.idle_for.as_secs()).then_some((used, ago))
}

/// The rule: why `ws` must be left alone under `rules`, or `None` to go on. `me` is the
/// caller's user id (`None` when unknown: then nobody's use is the caller's own).
pub fn busy_reason(
    ws: &types::Workspace,
    me: Option<Uuid>,
    rules: &BusyRules,
    now: DateTime<Utc>,
) -> Option<BusyReason> {
    if ws.is_prebuild == Some(true) && !rules.include_prebuilds {
        return Some(BusyReason::Prebuild);
    }
    if rules.include_busy {
        return None;
    }
    if let Some(since) = ws.dormant_at {
        return Some(BusyReason::Dormant { since });
    }
    if may_be_at_work(ws)
        && let Some(status) = &ws.latest_app_status
        && status.state == Some(AppStatusState::Working)
    {
        return Some(BusyReason::TaskWorking {
            message: cut(
                status.message.as_deref().unwrap_or(""),
                TASK_MESSAGE_MAX_BYTES,
            ),
            task_id: ws.task_id.and_then(|t| t.0),
        });
    }
    let (last_used_at, ago_seconds) = recent_use(ws, rules, now)?;
    let mine = me.is_some() && ws.owner_id == me;
    (!mine).then(|| BusyReason::InUse {
        owner: ws
            .owner_name
            .clone()
            .unwrap_or_else(|| "its owner".to_string()),
        last_used_at,
        ago_seconds,
    })
}

impl CoderClient {
    /// The caller's user id (`GET /users/me`), read once per client and shared by its clones.
    pub async fn me(&self) -> Result<Uuid> {
        self.me
            .get_or_try_init(|| async {
                let user = self
                    .api()
                    .get_user_by_name("me")
                    .await
                    .map_err(|e| self.error("reading who the token belongs to (users/me)", e))?
                    .into_inner();
                Ok(user.id)
            })
            .await
            .copied()
    }

    /// [`busy_reason`] now, reading who the caller is only when that matters (someone used
    /// the workspace recently). If that read fails, nobody's use counts as the caller's.
    pub async fn busy_reason(
        &self,
        ws: &types::Workspace,
        rules: &BusyRules,
    ) -> Option<BusyReason> {
        let now = Utc::now();
        let me = match recent_use(ws, rules, now) {
            Some(_) => self.me().await.ok(),
            None => None,
        };
        busy_reason(ws, me, rules, now)
    }

    /// Checks `ws` (as `label` names it) against `rules`: it comes back when nobody is at work
    /// in it. With [`BusyRules::wait_for_idle`], a workspace in use or with a task working is
    /// read again with backoff (the build poll's pace) until it is idle or the time is up.
    /// Otherwise [`Error::Busy`] (nothing was changed) with the remedies.
    pub(super) async fn leave_alone_if_busy(
        &self,
        mut ws: types::Workspace,
        label: &str,
        rules: &BusyRules,
        poll: &super::PollOptions,
        cancel: &Control,
        on_event: &mut (dyn FnMut(CoderEvent) + Send),
    ) -> Result<types::Workspace> {
        let began = std::time::Instant::now();
        let mut interval = poll.initial.max(Duration::from_millis(50));
        let max = poll.max.max(interval);
        let mut said = false;
        loop {
            let Some(reason) = self.busy_reason(&ws, rules).await else {
                return Ok(ws);
            };
            let left = rules
                .wait_for_idle
                .filter(|_| reason.may_end())
                .and_then(|w| w.checked_sub(began.elapsed()))
                .filter(|left| !left.is_zero());
            let Some(left) = left else {
                let name = WorkspaceInfo::from(&ws).full_name;
                let waited = rules
                    .wait_for_idle
                    .filter(|_| reason.may_end())
                    .map(|w| {
                        format!(
                            " after waiting {} for it to become idle",
                            humantime::format_duration(Duration::from_secs(w.as_secs()))
                        )
                    })
                    .unwrap_or_default();
                let remedies = reason.remedies();
                return Err(Error::advised(
                    Error::Busy {
                        workspace: name,
                        reason,
                        waited,
                    },
                    remedies,
                ));
            };
            if !said {
                said = true;
                on_event(CoderEvent::WaitingForIdle {
                    reason: reason.clone(),
                    wait_ms: crate::operation::ms(left),
                });
            }
            tokio::select! {
                _ = cancel.cancelled() => {
                    return Err(Error::Interrupted {
                        message: format!(
                            "interrupted while waiting for {label} to become idle; nothing was \
                             changed"
                        ),
                        last_state: None,
                    });
                }
                _ = tokio::time::sleep(interval.min(left)) => {}
            }
            interval = interval.mul_f64(1.5).min(max);
            let Some(id) = ws.id else {
                continue;
            };
            ws = self.read_workspace(&id).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(owner: Uuid, used_secs_ago: Option<i64>) -> types::Workspace {
        types::Workspace {
            owner_id: Some(owner),
            owner_name: Some("bob".into()),
            last_used_at: used_secs_ago.map(|s| Utc::now() - chrono::Duration::seconds(s)),
            ..Default::default()
        }
    }

    #[test]
    fn someone_elses_recent_use_counts_and_ones_own_does_not() {
        let (me, bob) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let rules = BusyRules::default();
        let r = busy_reason(&ws(bob, Some(120)), Some(me), &rules, Utc::now());
        assert_eq!(
            r.as_ref().map(ToString::to_string).as_deref(),
            Some("in use (last used 2 min ago by bob)")
        );
        assert_eq!(
            busy_reason(&ws(me, Some(5)), Some(me), &rules, Utc::now()),
            None
        );
        assert_eq!(
            busy_reason(&ws(bob, Some(31 * 60)), Some(me), &rules, Utc::now()),
            None
        );
        let include = BusyRules {
            include_busy: true,
            ..BusyRules::default()
        };
        assert_eq!(
            busy_reason(&ws(bob, Some(5)), Some(me), &include, Utc::now()),
            None
        );
    }

    #[test]
    fn a_task_id_is_read_as_a_string_an_object_or_null() {
        let id = "7d6c6f2e-8f2a-4a55-9e0b-0d7c1f1a2b3c";
        for v in [
            serde_json::json!(id),
            serde_json::json!({"uuid": id, "valid": true}),
        ] {
            let t: NullUuid = serde_json::from_value(v).expect("reads");
            assert_eq!(t.0.map(|u| u.to_string()).as_deref(), Some(id));
        }
        for v in [
            serde_json::json!(null),
            serde_json::json!({"uuid": id, "valid": false}),
            serde_json::json!(42),
        ] {
            let t: NullUuid = serde_json::from_value(v).expect("reads");
            assert_eq!(t.0, None);
        }
    }
}
