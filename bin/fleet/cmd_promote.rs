//! `fleet coder promote` and `fleet coder rollback`: progressive delivery of a template
//! version. Everything that talks to Coder is in `fleet::coder` (promote.rs); this file parses,
//! calls, renders.

use clap::Args;
use fleet::coder::{
    CanaryChoice, CoderClient, FleetEvent, FleetReport, PromoteEvent, PromoteOptions,
    PromoteOutcome, PromoteReport, PromoteRequest, RollbackReport, RollbackRequest,
    TemplateVersionRef, WorkspaceRef,
};
use fleet::text::escape_one_line;

use crate::{
    cli::{self, GlobalOpts, OutputFormat},
    cmd_coder::{
        BusyArgs, ParamArgs, WaitArgs, column_width, parse_canary, parse_max_failures,
        parse_parallel, parse_version, parse_workspace, secs, tone, version_cell,
    },
    command::{CommandLine, NameKind, Printed},
    follow::follow,
    out,
    render::{ManyEvent, ManyShown, ManyTargets},
};

pub const PROMOTE_HELP: &str = "\
What it does:
  1. pre-flight (reads only; a refusal exits 2 and changes nothing): the version exists,
     belongs to the template, is imported and not archived; every workspace that will move
     passes the update's own pre-flight on it (parameter values included)
  2. canaries: --canary N (default 1) running workspaces of the template that nobody is at
     work in (chosen by name, and said), or the ones --canary-workspaces names, are updated
     to the version, pinned, and must end healthy (built, agents connected and ready within
     --ready-timeout)
  3. promotion: only when every canary is healthy, the version becomes the template's active
     one (needs template-admin permission; a 403 leaves the canaries on the new version, says
     so and prints the rollback command)
  4. rollout: every other workspace of the template (every owner's) not on the version is
     updated, --parallel at a time, --max-failures as the budget; a re-run resumes
  5. rollback: a canary that fails is updated back to the version it ran before; nothing is
     promoted and no other workspace is touched (--no-rollback leaves it for inspection)

--dry-run prints the plan (canaries, promotion, the rest, with versions) and changes nothing.
Ctrl-C: the first starts nothing new and never promotes if the promotion has not happened;
the second leaves everything as it is.

Exit codes: 0 promoted and rolled out · 1 a canary failed, Coder refused the promotion, or
the rollout after it hit its failure budget (the report says it was promoted) · 2 refused by
the pre-flight (nothing changed) · 3 timed out · 130 interrupted

Examples:
  fleet coder promote web --version v2 --dry-run
  fleet coder promote web --version v2 --canary 2 --parallel 8 --max-failures 2
  fleet coder promote web --version v2 --canary-workspaces carol/web-03,carol/web-04";

pub const ROLLBACK_HELP: &str = "\
Makes --to-version (default: the newest imported, unarchived version older than the active
one) the template's active version again first, so that starts stop building the bad one,
then updates the workspaces back to it: those named with --workspaces, else every workspace
of the template on the version that was active. `fleet coder promote` prints the exact
rollback command for what it moved.

Exit codes: 0 rolled back · 1 a workspace failed or Coder refused · 2 refused (nothing
changed) · 3 timed out · 130 interrupted

Examples:
  fleet coder rollback web --to-version v1 --dry-run
  fleet coder rollback web --to-version v1 --workspaces carol/web-01,carol/web-02";

/// `fleet coder promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The template: its name (case-insensitive) or ID.
    #[arg(value_name = "TEMPLATE")]
    template: String,

    /// The version to promote: its name within the template, or its ID.
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    version: TemplateVersionRef,

    /// How many canaries fleet chooses (running, nobody at work in them); 0: none.
    #[arg(long, value_name = "N", default_value_t = fleet::coder::DEFAULT_CANARY, value_parser = parse_canary, conflicts_with = "canary_workspaces")]
    canary: usize,

    /// The canaries, named (comma-separated: owner/name, names of your own, or UUIDs).
    #[arg(long, value_name = "WORKSPACES", value_delimiter = ',', value_parser = parse_workspace)]
    canary_workspaces: Vec<WorkspaceRef>,

    /// How many workspaces are updated at once (canaries, rollout, rollback).
    #[arg(long, value_name = "N", default_value_t = fleet::coder::DEFAULT_PARALLEL, value_parser = parse_parallel)]
    parallel: usize,

    /// The rollout after the promotion starts no more once K have failed or are unhealthy.
    #[arg(long, value_name = "K", value_parser = parse_max_failures)]
    max_failures: Option<usize>,

    /// Leave a failed canary as it is, for inspection (default: back to its version).
    #[arg(long)]
    no_rollback: bool,

    /// Print the plan after every read it needs; change nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    busy: BusyArgs,

    #[command(flatten)]
    params: ParamArgs,

    #[command(flatten)]
    wait: WaitArgs,
}

/// `fleet coder rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The template: its name (case-insensitive) or ID.
    #[arg(value_name = "TEMPLATE")]
    template: String,

    /// The version to go back to (default: the newest usable one older than the active one).
    /// `--template-version`, the name the SDK's advice gives it, is accepted too.
    #[arg(long, alias = "template-version", value_name = "VERSION", value_parser = parse_version)]
    to_version: Option<TemplateVersionRef>,

    /// Only these workspaces (comma-separated), else every one on the version that was active.
    #[arg(long, value_name = "WORKSPACES", value_delimiter = ',', value_parser = parse_workspace)]
    workspaces: Vec<WorkspaceRef>,

    /// How many workspaces are updated at once.
    #[arg(long, value_name = "N", default_value_t = fleet::coder::DEFAULT_PARALLEL, value_parser = parse_parallel)]
    parallel: usize,

    /// Start no more once K have failed or are unhealthy.
    #[arg(long, value_name = "K", value_parser = parse_max_failures)]
    max_failures: Option<usize>,

    /// Print what would be done after every read it needs; change nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    wait: WaitArgs,
}

/// Runs `fleet coder promote`; returns the exit code.
pub async fn promote(
    client: &CoderClient,
    args: PromoteArgs,
    global: &GlobalOpts,
) -> fleet::Result<i32> {
    let format = global.output;
    let mut update = args.wait.options(false, global);
    update.busy = args.busy.rules();
    args.params.apply(&mut update)?;
    let ready = args.wait.ready(&update);
    let options = PromoteOptions {
        canary: args.canary,
        parallel: args.parallel,
        max_failures: args.max_failures,
        update,
        ready,
        rollback: !args.no_rollback,
        dry_run: args.dry_run,
    };
    let request = PromoteRequest {
        template: args.template.clone(),
        version: args.version.clone(),
        canary_workspaces: args.canary_workspaces.clone(),
    };
    let mut progress = ManyTargets::new(format, args.wait.show_logs(format), true);
    let op = client.start_promote(request, options);
    let report = follow(&op, &mut progress).await?;
    let commands = rollback_commands(&report, &args);
    match format {
        OutputFormat::Json => {
            let mut v = serde_json::to_value(&report).unwrap_or_default();
            v["rollback_commands"] = serde_json::json!(
                commands
                    .iter()
                    .filter_map(|c| c.command.clone())
                    .collect::<Vec<_>>()
            );
            out::json(&v);
        }
        OutputFormat::Text => print_promote(&report, &commands),
    }
    Ok(cli::code(report.worst))
}

/// The commands that take what the promotion moved back, group by group: the workspaces
/// that came from the version active before with `fleet coder rollback` (which restores it
/// first when the promotion happened), the others with a pinned `fleet coder update`.
fn rollback_commands(report: &PromoteReport, args: &PromoteArgs) -> Vec<Printed> {
    let mut commands = Vec::new();
    let previous = report.plan.active_version.as_ref().map(|v| v.id);
    for (from_id, (from, workspaces)) in report.to_roll_back() {
        let named: Vec<&str> = workspaces.iter().map(String::as_str).collect();
        if Some(from_id) == previous {
            let mut c = CommandLine::new(&["coder", "rollback"]);
            c.option("--to-version", &from.label());
            if !report.promoted {
                // Not promoted: the template is as it was; take back only these.
                c.option("--workspaces", &named.join(","));
            }
            put_wait(&mut c, &args.wait, args.parallel);
            c.needs_names()
                .name(&report.plan.template, NameKind::CoderTemplate);
            commands.push(c.build());
        } else {
            let mut c = CommandLine::new(&["coder", "update"]);
            c.option("--template-version", &from_id.to_string());
            if args.parallel != fleet::coder::DEFAULT_PARALLEL {
                c.option("--parallel", &args.parallel.to_string());
            }
            c.needs_names().names(named, NameKind::CoderWorkspace);
            commands.push(c.build());
        }
    }
    commands
}

fn put_wait(c: &mut CommandLine, wait: &WaitArgs, parallel: usize) {
    if parallel != fleet::coder::DEFAULT_PARALLEL {
        c.option("--parallel", &parallel.to_string());
    }
    if wait.client_driven {
        c.flag("--client-driven");
    }
    if wait.no_wait_ready {
        c.flag("--no-wait-ready");
    } else if wait.ready_timeout != fleet::coder::DEFAULT_READY_TIMEOUT {
        c.option("--ready-timeout", &cli::duration_words(wait.ready_timeout));
    }
}

/// One row per workspace of a phase: phase, workspace, verdict, version, total.
fn phase_rows(rows: &mut Vec<[String; 5]>, phase: &str, r: &FleetReport) {
    for w in &r.results {
        rows.push([
            phase.to_string(),
            escape_one_line(&w.workspace).into_owned(),
            w.verdict.to_string(),
            version_cell(w),
            secs(Some(w.elapsed_ms)),
        ]);
    }
}

fn print_rows(rows: &[[String; 5]], reports: &[&FleetReport]) {
    if rows.is_empty() {
        return;
    }
    let width = |i: usize, header: &str| column_width(rows.iter().map(|r| r[i].as_str()), header);
    let (name_w, version_w) = (width(1, "WORKSPACE"), width(3, "VERSION"));
    out::line(format!(
        "{:<8}  {:<name_w$}  {:<15}  {:<version_w$}  {:>7}",
        "PHASE", "WORKSPACE", "VERDICT", "VERSION", "TOTAL"
    ));
    let verdicts = reports.iter().flat_map(|r| &r.results).map(|w| w.verdict);
    for (row, verdict) in rows.iter().zip(verdicts) {
        out::row_with_verdict(
            &format!("{:<8}  {:<name_w$}  ", row[0], row[1]),
            &row[2],
            15,
            tone(verdict),
            &format!("  {:<version_w$}  {:>7}", row[3], row[4]),
        );
    }
    for r in reports.iter().flat_map(|r| &r.results) {
        if r.severity != fleet::coder::Severity::Ok && r.verdict != fleet::coder::Verdict::Skipped {
            out::line(String::new());
            out::line(format!(
                "{}: {} — {}",
                escape_one_line(&r.workspace),
                r.verdict,
                cli::advised(&r.message, &r.remedies)
            ));
        }
    }
}

fn print_promote(report: &PromoteReport, commands: &[Printed]) {
    let plan = &report.plan;
    let template = escape_one_line(&plan.template);
    out::line(format!(
        "Template {template}: promote {} (active now: {})",
        plan.version,
        plan.active_version
            .as_ref()
            .map_or_else(|| "none".into(), |v| v.to_string())
    ));
    let canaries: Vec<String> = plan
        .canaries
        .iter()
        .map(|c| {
            format!(
                "{} (on {})",
                escape_one_line(&c.workspace),
                c.from
                    .as_ref()
                    .map_or_else(|| "?".into(), |v| v.to_string())
            )
        })
        .collect();
    let how = match &plan.canary_choice {
        CanaryChoice::Named => "named".to_string(),
        CanaryChoice::Chosen { asked } => format!(
            "chosen: running and nobody at work in them ({} of {asked} asked for)",
            plan.canaries.len()
        ),
        CanaryChoice::AlreadyActive => "none: the version is already active".into(),
        CanaryChoice::NoneAsked => "none: --canary 0".into(),
        CanaryChoice::NoCandidate => "none: no workspace to try it on".into(),
    };
    out::line(format!(
        "  1. canaries ({how}): {}",
        if canaries.is_empty() {
            "-".into()
        } else {
            canaries.join(", ")
        }
    ));
    if !plan.passed_over.is_empty() {
        let names: Vec<String> = plan
            .passed_over
            .iter()
            .map(|p| escape_one_line(&p.workspace).into_owned())
            .collect();
        out::line(format!(
            "     passed over (someone at work in them): {}",
            names.join(", ")
        ));
    }
    out::line(format!(
        "  2. promotion: {} becomes the active version{}",
        plan.version,
        if plan.already_active {
            " (it already is)"
        } else {
            ""
        }
    ));
    if let fleet::coder::PromotePermission::Unconfirmed { roles } = &plan.permission {
        out::line(format!(
            "     warning: the session's site roles ({}) do not include owner or template-admin: \
             unless an organization role grants it, Coder will refuse the promotion (403) after \
             the canaries",
            escape_one_line(&roles.join(", "))
        ));
    }
    let rest: Vec<String> = plan
        .rest
        .iter()
        .take(20)
        .map(|r| {
            format!(
                "{} (on {}){}",
                escape_one_line(&r.workspace),
                r.from
                    .as_ref()
                    .map_or_else(|| "?".into(), |v| v.to_string()),
                if r.busy.is_some() {
                    ", in use: skipped"
                } else {
                    ""
                }
            )
        })
        .collect();
    out::line(format!(
        "  3. rollout: {} workspace(s){}{}",
        plan.rest.len(),
        if rest.is_empty() {
            String::new()
        } else {
            format!(": {}", rest.join(", "))
        },
        if plan.rest.len() > rest.len() {
            format!(" and {} more", plan.rest.len() - rest.len())
        } else {
            String::new()
        }
    ));
    out::line(String::new());
    let mut rows = Vec::new();
    let mut reports: Vec<&FleetReport> = Vec::new();
    for (phase, r) in [
        ("canary", &report.canary),
        ("rollback", &report.rollback),
        ("rollout", &report.rollout),
    ] {
        if let Some(r) = r {
            phase_rows(&mut rows, phase, r);
            reports.push(r);
        }
    }
    print_rows(&rows, &reports);
    if !rows.is_empty() {
        out::line(String::new());
    }
    let tone_of = match report.outcome {
        PromoteOutcome::Promoted if report.worst == fleet::coder::Severity::Ok => out::Tone::Good,
        PromoteOutcome::Planned => out::Tone::Neutral,
        _ => out::Tone::Bad,
    };
    out::row_with_verdict("", outcome_word(report.outcome), 0, tone_of, "");
    out::line(report.message.clone());
    for c in commands {
        out::line(c.sentence("To take them back to the version they ran before"));
    }
}

fn outcome_word(o: PromoteOutcome) -> &'static str {
    match o {
        PromoteOutcome::Planned => "dry run",
        PromoteOutcome::Refused => "refused",
        PromoteOutcome::CanaryFailed => "canary failed",
        PromoteOutcome::PromotionFailed => "not promoted",
        PromoteOutcome::Promoted => "promoted",
        PromoteOutcome::InterruptedBeforePromotion => "interrupted, not promoted",
    }
}

/// Runs `fleet coder rollback`; returns the exit code.
pub async fn rollback(
    client: &CoderClient,
    args: RollbackArgs,
    global: &GlobalOpts,
) -> fleet::Result<i32> {
    let format = global.output;
    let update = args.wait.options(false, global);
    let ready = args.wait.ready(&update);
    let options = PromoteOptions {
        parallel: args.parallel,
        max_failures: args.max_failures,
        update,
        ready,
        dry_run: args.dry_run,
        ..PromoteOptions::default()
    };
    let request = RollbackRequest {
        template: args.template.clone(),
        to_version: args.to_version.clone(),
        workspaces: args.workspaces.clone(),
    };
    let mut progress = ManyTargets::new(format, args.wait.show_logs(format), true);
    let op = client.start_rollback(request, options);
    let report = follow(&op, &mut progress).await?;
    match format {
        OutputFormat::Json => out::json(&report),
        OutputFormat::Text => print_rollback(&report),
    }
    Ok(cli::code(report.worst))
}

fn print_rollback(report: &RollbackReport) {
    out::line(format!(
        "Template {}: back to {} (active before: {})",
        escape_one_line(&report.template),
        report.to,
        report
            .active_before
            .as_ref()
            .map_or_else(|| "none".into(), |v| v.to_string())
    ));
    if report.dry_run {
        for w in &report.workspaces {
            out::line(format!(
                "  {} (on {})",
                escape_one_line(&w.workspace),
                w.from
                    .as_ref()
                    .map_or_else(|| "?".into(), |v| v.to_string())
            ));
        }
    }
    let mut rows = Vec::new();
    let reports: Vec<&FleetReport> = report.rollout.iter().collect();
    if let Some(r) = &report.rollout {
        phase_rows(&mut rows, "rollback", r);
    }
    // The table stands apart from the title and the verdict, as `fleet coder promote`'s does.
    if !rows.is_empty() {
        out::line(String::new());
    }
    print_rows(&rows, &reports);
    if !rows.is_empty() {
        out::line(String::new());
    }
    out::line(report.message.clone());
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// A phase's batch event, its keys made the phase's own (a workspace may appear in two).
fn phase_key(phase: fleet::coder::PromotePhase, shown: ManyShown) -> ManyShown {
    let k = |key: String| format!("{phase}:{key}");
    match shown {
        ManyShown::Begin { key, label } => ManyShown::Begin {
            key: k(key),
            label: format!("{phase} {label}"),
        },
        ManyShown::Step { key, label } => ManyShown::Step {
            key: k(key),
            label: format!("{phase} {label}"),
        },
        ManyShown::Finished {
            key, label, last, ..
        } => ManyShown::Finished {
            key: k(key),
            label: format!("{phase} {label}"),
            done: 0,
            last,
        },
        // Each phase's selection is a line of its own; no total is drawn across phases.
        ManyShown::Total(_) => ManyShown::Note { one_fewer: false },
        other => other,
    }
}

/// The pre-flight's one line: `checking N of M…`, then `checked M of M`.
fn preflight_words(checked: usize, total: usize) -> String {
    if checked < total {
        format!("checking {checked} of {total}…")
    } else {
        format!("checked {checked} of {total}")
    }
}

/// Without a terminal, the pre-flight's count is a line at the first workspace, at every
/// tenth of them and at the last: a dozen lines at most, however large the template.
fn preflight_line_due(checked: usize, total: usize) -> bool {
    let step = total.div_ceil(10).max(1);
    checked == 1 || checked >= total || checked % step == 0
}

impl ManyEvent for PromoteEvent {
    fn shown(&self) -> ManyShown {
        match self {
            PromoteEvent::PreflightChecked { checked, total, .. } => {
                let (key, label) = ("pre-flight".to_string(), "pre-flight".to_string());
                if checked < total {
                    ManyShown::Step { key, label }
                } else {
                    ManyShown::Finished {
                        key,
                        label,
                        done: 0,
                        last: None,
                    }
                }
            }
            PromoteEvent::Workspace { phase, step } => phase_key(*phase, step.shown()),
            PromoteEvent::LogLinesDropped { count } => ManyShown::Dropped(*count),
            _ => ManyShown::Note { one_fewer: false },
        }
    }

    fn text(&self) -> String {
        match self {
            PromoteEvent::PreflightChecked { checked, total, .. } => {
                preflight_words(*checked, *total)
            }
            PromoteEvent::Workspace { step, .. } => match step {
                FleetEvent::Selected { .. } => escape_one_line(&self.describe()).into_owned(),
                _ => step.text(),
            },
            _ => escape_one_line(&self.describe()).into_owned(),
        }
    }

    fn line(&self) -> Option<String> {
        match self {
            PromoteEvent::PreflightChecked { checked, total, .. } => {
                preflight_line_due(*checked, *total)
                    .then(|| format!("pre-flight: {}", preflight_words(*checked, *total)))
            }
            PromoteEvent::Workspace { phase, step } => step.line().map(|l| format!("{phase}: {l}")),
            _ => Some(escape_one_line(&self.describe()).into_owned()),
        }
    }
}
