//! What fleet-mcp answers, sized for a model's context: every tool result at most
//! [`MAX_ANSWER_TOKENS`] (o200k tokens, `shared/tools/count_tokens.py`) at any fleet size.
//! Lists page (`limit`, an opaque `cursor` in, `next_cursor` out), rows are compact (names, not
//! UUIDs), operations lead with counts and the rows that need attention, and a last guard cuts
//! whatever would still pass the bound, saying what it cut and how to get the rest.
//!
//! The server cannot run the tokenizer, so it counts with [`estimate_tokens`]: an upper bound
//! per kind of character, taken from the worst cases measured with the counter (random
//! printable ASCII ~1.33 bytes a token, astral-plane characters ~1 byte a token); words the
//! answers use all the time (field names, states) count as the one token they are.

use std::collections::BTreeMap;

use fleet::coder::{WorkspaceInfo, WorkspaceStatus};
use fleet::operation::{OperationKind, OperationSnapshot, OperationState, TargetStatus};
use rmcp::model::{CallToolResult, ContentBlock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most tokens a tool result may cost (its text block and its structuredContent each).
pub const MAX_ANSWER_TOKENS: usize = 5_000;
/// What an answer is built to: the bound less a margin for the estimate.
const BUDGET: usize = 4_600;
/// Rows a page holds unless told (`limit`).
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows a page holds (`limit`); the guard may cut a page of long rows shorter.
pub const MAX_LIMIT: u32 = 200;
/// Rows that need attention shown in a summary; the others are counted.
const ATTENTION_CAP: usize = 10;
/// The longest message of a row, in characters.
const MESSAGE_CHARS: usize = 300;
/// The longest name in a row, in characters.
const NAME_CHARS: usize = 120;

// How much of a record a list gives: the fields an agent acts on (compact), or every field
// (full). Plain comments: the arguments' own descriptions say it, once.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    #[default]
    Compact,
    Full,
}

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

/// Words the answers repeat (field names, states, verdicts): one token each in o200k.
const KNOWN_WORDS: &[&str] = &[
    "full",
    "name",
    "status",
    "running",
    "starting",
    "pending",
    "failed",
    "deleted",
    "template",
    "version",
    "true",
    "false",
    "null",
    "target",
    "phase",
    "message",
    "from",
    "to",
    "next",
    "done",
    "planning",
    "updated",
    "already",
    "current",
    "would",
    "change",
    "not",
    "left",
    "out",
    "started",
    "workspace",
    "count",
    "counts",
    "cursor",
    "id",
    "kind",
    "state",
    "update",
    "restart",
    "batch",
    "operation",
    "operations",
    "targets",
    "latest",
    "step",
    "events",
    "at",
    "elapsed",
    "ms",
    "results",
    "attention",
    "total",
    "dry",
    "run",
    "ok",
    "max",
    "halt",
    "completed",
    "rolled",
    "back",
    "call",
    "get",
    "with",
    "the",
    "and",
    "of",
    "a",
    "an",
    "is",
    "in",
    "on",
    "for",
    "it",
    "more",
    "rows",
    "page",
    "docker",
    "dev",
    "user",
    "owner",
    "ws",
];

/// An upper bound of the o200k tokens of `text` (see the module's note), by runs: a run of
/// digits is a token per three; a run of letters one token if it is a known word, else one for
/// its first letter and 0.72 for each other (random mixed case measures 0.68); a run of other
/// ASCII characters one for the first (alone between letters or digits, as `-` in a UUID, it
/// is a token of its own) and 0.6 for each other; any other character one per UTF-8 byte.
/// Checked against the counter in this module's tests.
pub fn estimate_tokens(text: &str) -> usize {
    #[derive(PartialEq)]
    enum Run {
        None,
        Letters,
        Digits,
        Other,
    }
    // In hundredths of a token.
    let mut total = 0usize;
    let mut run = Run::None;
    let mut start = 0usize;
    let mut len = 0usize;
    let end_run = |run: &Run, word: &str, len: usize, total: &mut usize| match run {
        Run::Letters => {
            *total += if len <= 12 && KNOWN_WORDS.contains(&word) {
                100
            } else {
                100 + (len - 1) * 72
            }
        }
        Run::Digits => *total += len.div_ceil(3) * 100,
        Run::Other => *total += 100 + (len - 1) * 60,
        Run::None => {}
    };
    for (i, c) in text.char_indices() {
        let kind = if c.is_ascii_alphabetic() {
            Run::Letters
        } else if c.is_ascii_digit() {
            Run::Digits
        } else if c.is_ascii() {
            Run::Other
        } else {
            end_run(&run, &text[start..i], len, &mut total);
            run = Run::None;
            total += 100 * c.len_utf8();
            continue;
        };
        if kind != run {
            end_run(&run, &text[start..i], len, &mut total);
            run = kind;
            start = i;
            len = 0;
        }
        len += 1;
    }
    end_run(&run, &text[start..], len, &mut total);
    total.div_ceil(100)
}

fn tokens_of<T: Serialize>(value: &T) -> usize {
    serde_json::to_string(value)
        .map(|s| estimate_tokens(&s))
        .unwrap_or(usize::MAX)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

// ---------------------------------------------------------------------------------------------
// Cursors: opaque to the caller
// ---------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// FNV-1a: a stable fingerprint (cursors outlive a restart of fleet-mcp).
fn fingerprint(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

fn bad_cursor(what: &str) -> String {
    format!(
        "invalid_input: the cursor is not one this tool gave for these arguments ({what}); pass \
         next_cursor from the previous answer unchanged, with the same filters, or leave cursor \
         out to start from the first page. Nothing was sent"
    )
}

/// A cursor: `tag` `.` hex(key) `.` hex(fingerprint of the call's other arguments).
fn make_cursor(tag: &str, key: &str, scope: u32) -> String {
    format!("{tag}.{}.{scope:08x}", hex(key.as_bytes()))
}

fn read_cursor(tag: &str, cursor: &str, scope: u32) -> Result<String, String> {
    let mut parts = cursor.trim().splitn(3, '.');
    let (Some(t), Some(key), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_cursor("malformed"));
    };
    if t != tag || cursor.len() > 4096 {
        return Err(bad_cursor("it belongs to another list"));
    }
    if u32::from_str_radix(s, 16).ok() != Some(scope) {
        return Err(bad_cursor("it was given for other filters"));
    }
    unhex(key)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad_cursor("malformed"))
}

/// The page size asked for; out of range is invalid input.
pub fn page_limit(limit: Option<u32>) -> Result<usize, String> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(format!(
            "invalid_input: limit must be between 1 and {MAX_LIMIT} (got 0); nothing was sent"
        )),
        n if n > MAX_LIMIT => Err(format!(
            "invalid_input: limit must be between 1 and {MAX_LIMIT} (got {n}); page with cursor \
             instead. Nothing was sent"
        )),
        n => Ok(n as usize),
    }
}

// ---------------------------------------------------------------------------------------------
// list_agents
// ---------------------------------------------------------------------------------------------

/// A workspace in a list: what an agent acts on.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AgentRow {
    pub full_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkspaceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outdated: Option<bool>,
}

impl From<&WorkspaceInfo> for AgentRow {
    fn from(w: &WorkspaceInfo) -> Self {
        AgentRow {
            full_name: clip(&w.full_name, NAME_CHARS),
            status: w.status.clone(),
            template: w.template_name.as_deref().map(|t| clip(t, NAME_CHARS)),
            version: w
                .template_version_name
                .as_deref()
                .map(|t| clip(t, NAME_CHARS)),
            outdated: w.outdated,
        }
    }
}

/// A row of list_agents: compact, or the whole record with `detail: "full"`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum AgentEntry {
    Compact(AgentRow),
    Full(Box<WorkspaceInfo>),
}

/// `list_agents` output: one page, sorted by owner/name.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AgentPage {
    /// Workspaces matching the filters (all pages).
    pub count: usize,
    pub workspaces: Vec<AgentEntry>,
    /// Absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

fn sort_key(full_name: &str) -> (String, String) {
    (full_name.to_lowercase(), full_name.to_string())
}

/// Sorts a listing by owner/name, the key list_agents' cursor is keyed on.
pub fn sort_listing(workspaces: &mut [WorkspaceInfo]) {
    workspaces.sort_by_cached_key(|w| sort_key(&w.full_name));
}

/// One page of `workspaces` (sorted by [`sort_listing`]) after the cursor. `filters` are what
/// the cursor must have been given for.
pub fn agent_page(
    workspaces: &[WorkspaceInfo],
    filters: &[&str],
    limit: usize,
    cursor: Option<&str>,
    detail: Detail,
) -> Result<AgentPage, String> {
    let scope = fingerprint(filters);
    let after = cursor
        .filter(|c| !c.trim().is_empty())
        .map(|c| read_cursor("a1", c, scope))
        .transpose()?;
    let count = workspaces.len();
    let after_key = after.as_deref().map(sort_key);
    // Sorted by owner/name (listings are sorted once, when listed).
    let from = after_key.as_ref().map_or(0, |k| {
        workspaces.partition_point(|w| &sort_key(&w.full_name) <= k)
    });
    let rest = workspaces[from..].iter();
    let mut page = Vec::new();
    let mut used = 60;
    let mut cut = false;
    let mut more = false;
    let mut last = None;
    for w in rest {
        if page.len() == limit {
            more = true;
            break;
        }
        let entry = match detail {
            Detail::Compact => AgentEntry::Compact(AgentRow::from(w)),
            Detail::Full => AgentEntry::Full(Box::new(w.clone())),
        };
        let cost = tokens_of(&entry) + 1;
        // The first row always comes (the last guard shortens one too large).
        if used + cost > BUDGET - 200 && !page.is_empty() {
            cut = true;
            more = true;
            break;
        }
        used += cost;
        last = Some(w.full_name.clone());
        page.push(entry);
    }
    let next_cursor = more
        .then(|| last.as_deref().map(|l| make_cursor("a1", l, scope)))
        .flatten();
    let truncated = cut.then(|| {
        format!(
            "this page was cut at {} workspaces to stay within {MAX_ANSWER_TOKENS} tokens; \
             next_cursor continues",
            page.len()
        )
    });
    Ok(AgentPage {
        count,
        workspaces: page,
        next_cursor,
        truncated,
    })
}

/// The scope of list_agents' cursor: the filters (a cursor is refused with other filters).
pub fn agent_scope(parts: [Option<&str>; 6]) -> Vec<String> {
    parts
        .iter()
        .map(|p| p.map(str::to_lowercase).unwrap_or_default())
        .collect()
}

/// The listing behind list_agents' pages. A first page (no cursor) always lists afresh; a page
/// that follows within [`ListingCache::DEFAULT_REUSE`] (FLEET_MCP_LIST_REUSE_MS) of that listing,
/// with the same filters, pages through it instead of listing the whole fleet again, so a walk
/// through 5,000 workspaces costs one listing. Exactly-once does not depend on it: the cursor
/// is keyed on owner/name, and a page listed afresh goes on after the same key. Held only
/// while it is at most [`ListingCache::MAX_BYTES`] (estimated).
pub struct ListingCache {
    reuse: std::time::Duration,
    latest: std::sync::Mutex<Option<Listing>>,
}

struct Listing {
    scope: Vec<String>,
    at: std::time::Instant,
    workspaces: std::sync::Arc<Vec<WorkspaceInfo>>,
}

impl ListingCache {
    /// How long a listing serves the pages that follow it.
    pub const DEFAULT_REUSE: std::time::Duration = std::time::Duration::from_secs(5);
    /// The largest listing kept, in estimated bytes.
    pub const MAX_BYTES: usize = 16 << 20;

    /// The reuse window from FLEET_MCP_LIST_REUSE_MS (0: every page lists afresh).
    pub fn from_env() -> Self {
        let reuse = std::env::var("FLEET_MCP_LIST_REUSE_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Self::DEFAULT_REUSE, std::time::Duration::from_millis);
        ListingCache {
            reuse,
            latest: std::sync::Mutex::new(None),
        }
    }

    /// The listing for a page after the first, when a recent one with these filters is held.
    pub fn recent(&self, scope: &[String]) -> Option<std::sync::Arc<Vec<WorkspaceInfo>>> {
        let latest = self.latest.lock().ok()?;
        let l = latest.as_ref()?;
        (l.scope == scope && l.at.elapsed() <= self.reuse).then(|| l.workspaces.clone())
    }

    /// Keeps `workspaces` (listed just now with these filters) when small enough.
    pub fn keep(&self, scope: Vec<String>, workspaces: std::sync::Arc<Vec<WorkspaceInfo>>) {
        if self.reuse.is_zero() {
            return;
        }
        let bytes: usize = workspaces.iter().map(approx_bytes).sum();
        if let Ok(mut latest) = self.latest.lock() {
            *latest = (bytes <= Self::MAX_BYTES).then(|| Listing {
                scope,
                at: std::time::Instant::now(),
                workspaces,
            });
        }
    }
}

/// About the heap a workspace record holds.
fn approx_bytes(w: &WorkspaceInfo) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let build = w.latest_build.as_ref().map_or(0, |b| {
        200 + text(&b.job_error) + text(&b.template_version_name) + text(&b.created_at)
    });
    400 + w.full_name.len()
        + text(&w.name)
        + text(&w.owner_name)
        + text(&w.template_name)
        + text(&w.template_version_name)
        + build
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// Where one workspace of an operation stands: compact.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OperationRow {
    pub target: String,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The version (or provider) it ran before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version (or provider) it runs, or would run, now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Its latest step, or the reason it ended so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The tool call that finishes what it left behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A per-workspace result in a batch's outcome: compact.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ResultRow {
    pub workspace: String,
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// What was done, or why it failed and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Why a skipped workspace was left alone: in_use, task_working, prebuild, dormant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Verdicts (and states) that need someone to look.
fn needs_attention(verdict: &str) -> bool {
    matches!(
        verdict,
        "failed"
            | "unhealthy"
            | "left_stopped"
            | "interrupted"
            | "timed_out"
            | "rolled_back"
            | "refused"
            | "blocked"
    )
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The tool call that finishes a job left half-way, from a result's `aftermath`.
fn next_of(result: &Value) -> Option<String> {
    let aftermath = result.get("aftermath")?;
    match aftermath.get("kind")?.as_str()? {
        "left_stopped" => {
            let finish = aftermath.get("finish")?;
            let workspace = finish.get("workspace")?.clone();
            let parameters = finish.get("parameters").cloned().unwrap_or(Value::Null);
            Some(match finish.get("operation")?.as_str()? {
                "update" => format!(
                    "update_agent {}",
                    serde_json::json!({"agent_name": workspace, "template_version_id": finish.get("template_version_id"), "parameters": parameters})
                ),
                _ => format!(
                    "restart_agent {}",
                    serde_json::json!({"agent_name": workspace, "parameters": parameters})
                ),
            })
        }
        "still_running" => {
            let follow = aftermath.get("follow")?;
            if let Some(w) = follow.get("workspace") {
                Some(format!(
                    "show_agent {}",
                    serde_json::json!({ "agent_name": w })
                ))
            } else {
                follow.get("workspace_id").map(|w| {
                    format!(
                        "wait_for_workspace_migration {}",
                        serde_json::json!({ "workspace_id": w })
                    )
                })
            }
        }
        _ => None,
    }
}

/// True for the verdicts whose row says all in its verdict and versions: their message (which
/// repeats them, with the versions' UUIDs) is left out of a compact row.
fn self_explained(verdict: &str) -> bool {
    matches!(
        verdict,
        "updated"
            | "restarted"
            | "already_current"
            | "would_change"
            | "completed"
            | "not_attempted"
    )
}

fn result_row(r: &Value) -> ResultRow {
    let workspace = text(r, "workspace")
        .or_else(|| text(r, "workspace_id"))
        .unwrap_or_default();
    let verdict = text(r, "verdict").unwrap_or_default();
    ResultRow {
        workspace: clip(&workspace, NAME_CHARS),
        message: (!self_explained(&verdict))
            .then(|| text(r, "message").map(|m| clip(&m, MESSAGE_CHARS)))
            .flatten(),
        verdict,
        from: text(r, "from_version_name")
            .or_else(|| text(r, "from"))
            .map(|s| clip(&s, NAME_CHARS)),
        to: text(r, "to_version_name")
            .or_else(|| text(r, "to"))
            .map(|s| clip(&s, NAME_CHARS)),
        next: next_of(r).map(|n| clip(&n, 2 * MESSAGE_CHARS)),
        skipped: r
            .get("skipped")
            .and_then(|s| s.get("kind"))
            .and_then(Value::as_str)
            .map(|k| clip(k, NAME_CHARS)),
    }
}

fn operation_row(t: &TargetStatus, result: Option<&Value>) -> OperationRow {
    let r = result.map(result_row);
    OperationRow {
        target: clip(&t.target, NAME_CHARS),
        phase: t.phase.as_str().to_string(),
        verdict: t.verdict.clone(),
        from: r.as_ref().and_then(|r| r.from.clone()),
        to: r.as_ref().and_then(|r| r.to.clone()),
        message: match t.verdict.as_deref() {
            Some(v) if self_explained(v) => None,
            Some(_) => r
                .as_ref()
                .and_then(|r| r.message.clone())
                .or_else(|| t.message.as_deref().map(|m| clip(m, MESSAGE_CHARS))),
            None => t.message.as_deref().map(|m| clip(m, MESSAGE_CHARS)),
        },
        next: r.and_then(|r| r.next),
    }
}

/// The scope of an operation's row cursor: the operation and the detail asked for.
fn row_scope(operation_id: &str, detail: Detail) -> u32 {
    fingerprint(&[operation_id, if detail == Detail::Full { "f" } else { "c" }])
}

/// Where paging starts, from a row cursor of this operation.
pub fn row_start(
    operation_id: &str,
    cursor: Option<&str>,
    detail: Detail,
) -> Result<usize, String> {
    match cursor.filter(|c| !c.trim().is_empty()) {
        None => Ok(0),
        Some(c) => read_cursor("r1", c, row_scope(operation_id, detail))?
            .parse()
            .map_err(|_| bad_cursor("malformed")),
    }
}

/// Rows `start..` of `all`, as many as `limit` and the budget allow: (rows, next_cursor, cut).
fn page_rows<T: Serialize>(
    all: Vec<T>,
    start: usize,
    limit: usize,
    budget: usize,
    operation_id: &str,
    detail: Detail,
) -> (Vec<T>, Option<String>, bool) {
    let total = all.len();
    let mut used = 0;
    let mut rows = Vec::new();
    let mut cut = false;
    for row in all.into_iter().skip(start) {
        if rows.len() == limit {
            break;
        }
        let cost = tokens_of(&row) + 1;
        // The first row always comes (the last guard shortens one too large), so that a
        // cursor always moves on.
        if used + cost > budget && !rows.is_empty() {
            cut = true;
            break;
        }
        used += cost;
        rows.push(row);
    }
    let end = start + rows.len();
    let next =
        (end < total).then(|| make_cursor("r1", &end.to_string(), row_scope(operation_id, detail)));
    (rows, next, cut)
}

/// Counts by verdict (or by phase, for workspaces not done), sorted by name.
fn counts(workspaces: &[TargetStatus]) -> BTreeMap<String, usize> {
    bounded_counts(
        workspaces
            .iter()
            .map(|w| w.verdict.as_deref().unwrap_or(w.phase.as_str())),
    )
}

/// The most distinct keys a count map shows; the rest are summed under "other".
const COUNT_KEYS: usize = 24;

/// Counts of `keys`: at most [`COUNT_KEYS`] (the largest; a control plane may invent states),
/// each key clipped.
fn bounded_counts<'a>(keys: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut all: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *all.entry(k).or_insert(0) += 1;
    }
    let mut by_size: Vec<(&str, usize)> = all.into_iter().collect();
    by_size.sort_by_key(|e| std::cmp::Reverse(e.1));
    let mut counts = BTreeMap::new();
    for (i, (k, n)) in by_size.into_iter().enumerate() {
        let key = if i < COUNT_KEYS {
            clip(k, 40)
        } else {
            "other".to_string()
        };
        *counts.entry(key).or_insert(0) += n;
    }
    counts
}

/// The halt of a rollout, compact: the first names not attempted, and how many there are.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HaltSummary {
    pub reason: String,
    pub failures: usize,
    /// The first ones (their rows say not_attempted).
    pub not_attempted: Vec<String>,
    pub not_attempted_count: usize,
}

fn halt_summary(outcome: &Value) -> Option<HaltSummary> {
    let h = outcome.get("halt")?;
    let names: Vec<&Value> = h
        .get("not_attempted")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    Some(HaltSummary {
        reason: text(h, "reason").unwrap_or_default(),
        failures: h.get("failures").and_then(Value::as_u64).unwrap_or(0) as usize,
        not_attempted: names
            .iter()
            .take(TARGETS_SHOWN)
            .filter_map(|n| n.as_str())
            .map(|n| clip(n, NAME_CHARS))
            .collect(),
        not_attempted_count: names.len(),
    })
}

/// A batch's outcome (update_agents, migrate_workspaces), compact: its figures, counts by
/// verdict, the results that need attention, one page of results.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BatchOutcome {
    /// The report's figures (total, succeeded, failed, worst, dry_run, canary, …).
    #[serde(flatten)]
    pub figures: serde_json::Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halt: Option<HaltSummary>,
    pub counts: BTreeMap<String, usize>,
    /// Results that need attention (failed, unhealthy, left stopped, …), first ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<ResultRow>,
    /// One page of the results, in selection order.
    pub results: Vec<ResultRow>,
    /// get_operation {operation_id, cursor} gives the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

/// Compacts a batch's outcome JSON (a FleetReport, a MigrationRollout).
pub fn batch_outcome(
    operation_id: &str,
    outcome: &Value,
    start: usize,
    limit: usize,
    budget: usize,
) -> BatchOutcome {
    let results: Vec<&Value> = outcome
        .get("results")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let mut figures = serde_json::Map::new();
    if let Some(o) = outcome.as_object() {
        for (k, v) in o {
            if matches!(v, Value::Bool(_) | Value::Number(_) | Value::Null)
                || (matches!(v, Value::String(s) if s.len() <= 40))
            {
                figures.insert(k.clone(), v.clone());
            }
        }
    }
    figures.entry("total").or_insert(results.len().into());
    let verdicts: Vec<String> = results
        .iter()
        .map(|r| text(r, "verdict").unwrap_or_default())
        .collect();
    let counts = bounded_counts(verdicts.iter().map(String::as_str));
    let attention_all: Vec<ResultRow> = results
        .iter()
        .filter(|r| needs_attention(&text(r, "verdict").unwrap_or_default()))
        .map(|r| result_row(r))
        .collect();
    let attention_count = attention_all.len();
    let attention: Vec<ResultRow> = {
        let mut used = 0;
        attention_all
            .into_iter()
            .take(ATTENTION_CAP)
            .take_while(|r| {
                used += tokens_of(r) + 1;
                used <= budget / 3
            })
            .collect()
    };
    let rows: Vec<ResultRow> = results.iter().map(|r| result_row(r)).collect();
    let used = tokens_of(&figures) + tokens_of(&attention) + tokens_of(&counts) + 120;
    let (results, next_cursor, cut) = page_rows(
        rows,
        start,
        limit,
        budget.saturating_sub(used),
        operation_id,
        Detail::Compact,
    );
    let mut notes = Vec::new();
    if attention_count > attention.len() {
        notes.push(format!(
            "{} of {attention_count} results that need attention are shown in attention; the \
             others are in the pages of results",
            attention.len()
        ));
    }
    if cut {
        notes.push(format!(
            "the page of results was cut at {} to stay within {MAX_ANSWER_TOKENS} tokens",
            results.len()
        ));
    }
    if next_cursor.is_some() {
        notes.push(format!(
            "more results: call get_operation {{\"operation_id\": \"{operation_id}\", \"cursor\": \
             next_cursor}}"
        ));
    }
    BatchOutcome {
        figures,
        halt: halt_summary(outcome),
        counts,
        attention,
        results,
        next_cursor,
        truncated: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// True for the operations whose outcome is a batch of per-workspace results.
pub fn is_batch(kind: OperationKind) -> bool {
    matches!(
        kind,
        OperationKind::BatchUpdate | OperationKind::MigrationRollout
    )
}

/// An operation's per-workspace rows, compact: counts, attention first, one page.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RowsPage {
    /// Workspaces by verdict (or by phase while not done).
    pub counts: BTreeMap<String, usize>,
    /// Workspaces that need attention (failed, unhealthy, left stopped, …), first ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<OperationRow>,
    /// One page of workspaces, in the operation's order.
    pub workspaces: Vec<OperationRow>,
    /// get_operation {operation_id, cursor} gives the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The rows of `snapshot`, matched with the outcome's results when there are some.
pub fn rows_page(
    snapshot: &OperationSnapshot,
    outcome: Option<&Value>,
    start: usize,
    limit: usize,
    budget: usize,
) -> (RowsPage, Option<String>) {
    let results: Vec<&Value> = outcome
        .and_then(|o| o.get("results"))
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let result_of = |i: usize, t: &TargetStatus| -> Option<&Value> {
        results.get(i).copied().filter(|r| {
            text(r, "workspace")
                .or_else(|| text(r, "workspace_id"))
                .is_some_and(|w| w == t.target)
        })
    };
    let all: Vec<OperationRow> = snapshot
        .workspaces
        .iter()
        .enumerate()
        .map(|(i, t)| operation_row(t, result_of(i, t)))
        .collect();
    let attention_all: Vec<&OperationRow> = all
        .iter()
        .filter(|r| r.verdict.as_deref().is_some_and(needs_attention))
        .collect();
    let attention_count = attention_all.len();
    let mut used = 0;
    let attention: Vec<OperationRow> = attention_all
        .into_iter()
        .take(ATTENTION_CAP)
        .take_while(|r| {
            used += tokens_of(r) + 1;
            used <= budget / 3
        })
        .cloned()
        .collect();
    let counts = counts(&snapshot.workspaces);
    let used = tokens_of(&attention) + tokens_of(&counts) + 40;
    let (workspaces, next_cursor, cut) = page_rows(
        all,
        start,
        limit,
        budget.saturating_sub(used),
        &snapshot.id,
        Detail::Compact,
    );
    let mut notes = Vec::new();
    if attention_count > attention.len() {
        notes.push(format!(
            "{} of {attention_count} workspaces that need attention are shown in attention",
            attention.len()
        ));
    }
    if cut {
        notes.push(format!(
            "the page of workspaces was cut at {} to stay within {MAX_ANSWER_TOKENS} tokens",
            workspaces.len()
        ));
    }
    if next_cursor.is_some() {
        notes.push(format!(
            "more workspaces: call get_operation {{\"operation_id\": \"{}\", \"cursor\": \
             next_cursor}}",
            snapshot.id
        ));
    }
    (
        RowsPage {
            counts,
            attention,
            workspaces,
            next_cursor,
        },
        (!notes.is_empty()).then(|| notes.join("; ")),
    )
}

/// With `detail: "full"`: one page of an operation's full per-workspace results.
pub fn full_results(
    operation_id: &str,
    outcome: &Value,
    start: usize,
    limit: usize,
    budget: usize,
) -> (Vec<Value>, Option<String>, bool) {
    let all: Vec<Value> = outcome
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    page_rows(all, start, limit, budget, operation_id, Detail::Full)
}

/// One line per operation in list_operations: what it is and its counts, never its rows.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct OperationLine {
    pub id: String,
    pub kind: OperationKind,
    pub state: OperationState,
    pub done: bool,
    /// How many workspaces it works on.
    pub target_count: usize,
    /// The first few of them.
    pub targets: Vec<String>,
    pub counts: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_step: Option<String>,
    pub started_at: String,
    pub elapsed_ms: u64,
}

/// One page of list_operations' lines (oldest first) after the cursor, as many as `limit` and
/// the budget allow: (lines, next_cursor). The cursor is keyed on the last operation shown (its
/// id, then its start time if it has expired since), not on an offset.
pub fn operation_lines(
    lines: Vec<OperationLine>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<OperationLine>, Option<String>), String> {
    let scope = fingerprint(&["operations"]);
    let after = cursor
        .filter(|c| !c.trim().is_empty())
        .map(|c| read_cursor("o1", c, scope))
        .transpose()?;
    let start = match after.as_deref().and_then(|a| a.split_once(' ')) {
        None => 0,
        Some((started_at, id)) => match lines.iter().position(|l| l.id == id) {
            Some(i) => i + 1,
            None => lines
                .iter()
                .position(|l| l.started_at.as_str() > started_at)
                .unwrap_or(lines.len()),
        },
    };
    let total = lines.len();
    let mut used = 100;
    let mut page = Vec::new();
    for line in lines.into_iter().skip(start) {
        let cost = tokens_of(&line) + 1;
        if page.len() == limit || (used + cost > BUDGET && !page.is_empty()) {
            break;
        }
        used += cost;
        page.push(line);
    }
    let next = (start + page.len() < total)
        .then(|| page.last())
        .flatten()
        .map(|l| make_cursor("o1", &format!("{} {}", l.started_at, l.id), scope));
    Ok((page, next))
}

/// The first targets an operation line or report names.
pub const TARGETS_SHOWN: usize = 5;

impl From<&OperationSnapshot> for OperationLine {
    fn from(s: &OperationSnapshot) -> Self {
        OperationLine {
            id: s.id.clone(),
            kind: s.kind,
            state: s.state,
            done: s.done,
            target_count: s.targets.len(),
            targets: s
                .targets
                .iter()
                .take(TARGETS_SHOWN)
                .map(|t| clip(t, NAME_CHARS))
                .collect(),
            counts: counts(&s.workspaces),
            latest_step: s.latest_step.as_deref().map(|m| clip(m, MESSAGE_CHARS)),
            started_at: s.started_at.clone(),
            elapsed_ms: s.elapsed_ms,
        }
    }
}

/// The budget of an answer part, in estimated tokens.
pub fn budget() -> usize {
    BUDGET
}

/// Estimated tokens of a serializable value.
pub fn cost<T: Serialize>(value: &T) -> usize {
    tokens_of(value)
}

// ---------------------------------------------------------------------------------------------
// The last guard
// ---------------------------------------------------------------------------------------------

/// Cuts a result that would pass the bound: long strings first, then long lists, saying what
/// was cut. The text block is rebuilt from the structured content so both stay the same.
pub fn guard(mut result: CallToolResult) -> CallToolResult {
    if let Some(structured) = result.structured_content.take() {
        let text_fits = result.content.iter().all(|c| {
            c.as_text()
                .is_none_or(|t| estimate_tokens(&t.text) <= BUDGET)
        });
        let s = structured.to_string();
        if text_fits && estimate_tokens(&s) <= BUDGET {
            result.structured_content = Some(structured);
            return result;
        }
        let mut value = structured;
        let mut note = None;
        for max in [2_000usize, 600, 200, 60] {
            let mut cut = 0;
            shorten(&mut value, max, usize::MAX, &mut cut);
            if cut > 0 {
                note = Some(format!(
                    "{cut} long text(s) were cut to {max} characters to stay within \
                     {MAX_ANSWER_TOKENS} tokens"
                ));
            }
            if estimate_tokens(&value.to_string()) <= BUDGET {
                break;
            }
        }
        let mut items = 64usize;
        while estimate_tokens(&value.to_string()) > BUDGET && items > 0 {
            let mut cut = 0;
            shorten(&mut value, 60, items, &mut cut);
            note = Some(format!(
                "long texts and lists were cut (lists to their first {items} items) to stay \
                 within {MAX_ANSWER_TOKENS} tokens; ask for less (filters, a smaller limit, a \
                 cursor) to see the rest"
            ));
            items /= 2;
        }
        if let (Some(note), Some(o)) = (note, value.as_object_mut()) {
            o.insert("truncated".into(), Value::String(note));
        }
        result.content = vec![ContentBlock::text(value.to_string())];
        result.structured_content = Some(value);
        return result;
    }
    for block in result.content.iter_mut() {
        if let Some(t) = block.as_text() {
            if estimate_tokens(&t.text) > BUDGET {
                let mut chars = t.text.chars().count();
                let mut cut = t.text.clone();
                while estimate_tokens(&cut) > BUDGET - 100 && chars > 0 {
                    chars = chars * 3 / 4;
                    cut = clip(&t.text, chars);
                }
                *block = ContentBlock::text(format!(
                    "{cut} [cut to stay within {MAX_ANSWER_TOKENS} tokens]"
                ));
            }
        }
    }
    result
}

/// The most keys the guard leaves in a JSON object it has to cut.
const MAP_KEYS: usize = 64;

fn shorten(v: &mut Value, max_chars: usize, max_items: usize, cut: &mut usize) {
    match v {
        Value::String(s) if s.chars().count() > max_chars => {
            *s = clip(s, max_chars);
            *cut += 1;
        }
        Value::Array(a) => {
            if a.len() > max_items {
                a.truncate(max_items);
                *cut += 1;
            }
            a.iter_mut()
                .for_each(|x| shorten(x, max_chars, max_items, cut));
        }
        Value::Object(o) => {
            // A map of data (parameters, unknown fields a server added), never a struct of
            // fleet's: those have far fewer fields.
            if max_items < usize::MAX && o.len() > MAP_KEYS {
                *o = std::mem::take(o).into_iter().take(MAP_KEYS).collect();
                *cut += 1;
            }
            o.values_mut()
                .for_each(|x| shorten(x, max_chars, max_items, cut))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The estimate stays above what the shared counter (o200k) says of the hard cases; the
    /// counts were taken with `shared/tools/count_tokens.py` on these exact strings.
    #[test]
    fn the_estimate_is_an_upper_bound_of_the_counter() {
        let uuids: Vec<String> = (0u64..50)
            .map(|i| {
                format!(
                    "{i:08x}-1a2b-4c3d-8e9f-{:012x}",
                    (i * 7919) % 1_000_000_000_000
                )
            })
            .collect();
        let printable: String = (0u32..2000)
            .map(|i| char::from_u32(33 + (i * 37) % 94).unwrap())
            .collect();
        let cjk: String = (0u32..1000)
            .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20_000).unwrap())
            .collect();
        let astral: String = (0u32..500)
            .map(|i| char::from_u32(0x1_0000 + (i * 104_729) % 0xf_0000).unwrap())
            .collect();
        let rows: Vec<String> = (0..50)
            .map(|i| {
                format!(
                    "{{\"full_name\":\"alice/bulk-{i:04}\",\"status\":\"running\",\"template\":\
                     \"docker-dev\",\"version\":\"v2\",\"outdated\":true}}"
                )
            })
            .collect();
        let row = format!("[{}]", rows.join(","));
        for (name, text, counted) in [
            ("uuids", uuids.join(" "), 1247),
            ("printable", printable, 1510),
            ("cjk", cjk, 1922),
            ("astral", astral, 1967),
            ("compact rows", row, 1452),
        ] {
            let estimate = estimate_tokens(&text);
            assert!(
                estimate >= counted,
                "{name}: estimate {estimate} < {counted}"
            );
            // Not so loose that pages become tiny: within 2.5 times the count.
            assert!(
                estimate * 10 <= counted * 25,
                "{name}: estimate {estimate} vs {counted}"
            );
        }
    }

    #[test]
    fn counts_show_at_most_24_keys_and_sum_the_rest() {
        let states: Vec<String> = (0..100).map(|i| format!("state-{i}")).collect();
        let mut keys: Vec<&str> = states.iter().map(String::as_str).collect();
        keys.extend(["failed"; 10]);
        let counts = bounded_counts(keys.into_iter());
        assert!(counts.len() <= COUNT_KEYS + 1, "{counts:?}");
        assert_eq!(counts["failed"], 10);
        assert_eq!(counts.values().sum::<usize>(), 110);
        assert!(counts["other"] > 0);
    }

    #[test]
    fn the_guard_cuts_texts_lists_and_maps_and_says_so() {
        let huge: serde_json::Map<String, Value> = (0..5_000)
            .map(|i| (format!("param-{i}"), Value::String("x".repeat(50))))
            .collect();
        let value = serde_json::json!({
            "message": "y".repeat(100_000),
            "rows": (0..10_000).map(|i| format!("alice/ws-{i}")).collect::<Vec<_>>(),
            "parameters": huge,
        });
        let result = guard(CallToolResult::structured(value));
        let structured = result.structured_content.as_ref().unwrap();
        let text = structured.to_string();
        assert!(
            estimate_tokens(&text) <= BUDGET,
            "{}",
            estimate_tokens(&text)
        );
        assert!(structured["truncated"].is_string(), "{text:.300}");
        let block = result.content[0].as_text().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&block.text).unwrap(),
            *structured
        );
        // An error text is cut too.
        let error = guard(CallToolResult::error(vec![ContentBlock::text(
            "z!".repeat(50_000),
        )]));
        let t = &error.content[0].as_text().unwrap().text;
        assert!(estimate_tokens(t) <= BUDGET && t.contains("cut to stay within"));
    }
}
