//! The two renderers of long operations, on stderr, for both planes: [`OneTarget`] (an update,
//! a restart, a dry run, a migration) and [`ManyTargets`] (a batch, a rollout, several
//! migrations). Each draws bars on a terminal, plain lines otherwise, nothing with `-o json`
//! (but the build logs when asked for). A plane's events say what they show
//! ([`TargetEvent`], [`ManyEvent`]); the words are the plane's.

use std::{collections::HashMap, time::Duration};

use fleet::text::escape_one_line;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::{
    cli::{self, OutputFormat},
    follow::Render,
    out,
};

#[derive(PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Bars,
}

fn mode(format: OutputFormat, bars: bool) -> Mode {
    match format {
        OutputFormat::Json => Mode::Quiet,
        OutputFormat::Text if bars && cli::stderr_is_terminal() => Mode::Bars,
        OutputFormat::Text => Mode::Lines,
    }
}

/// Log lines dropped because the terminal was slower than the log: said at most once a second
/// (with how many since the last note), and before anything else is shown.
#[derive(Default)]
struct DropNotes {
    pending: u64,
    last: Option<std::time::Instant>,
}

impl DropNotes {
    /// Counts `count` more dropped lines.
    fn add(&mut self, count: u64) {
        self.pending += count;
    }

    /// The note to show now, if any: when `now_anyway`, or a second after the last one.
    fn take(&mut self, now_anyway: bool) -> Option<String> {
        let due = now_anyway
            || self
                .last
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if self.pending == 0 || !due {
            return None;
        }
        self.last = Some(std::time::Instant::now());
        let count = std::mem::take(&mut self.pending);
        Some(format!(
            "  | … {}",
            fleet::coder::CoderEvent::LogLinesDropped { count }.describe()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// One target
// ---------------------------------------------------------------------------------------------

/// What an event of one target shows.
pub enum Shown {
    /// A line of the server's log (shown only when logs are asked for).
    Log(String),
    /// This many log lines were dropped (the terminal was slower than the log).
    Dropped(u64),
    /// A step begins: a spinner labelled `label` (with `again`, the one drawn goes on when it
    /// has that label).
    Begin { label: &'static str, again: bool },
    /// The step drawn moves on.
    Update,
    /// The step drawn ended.
    End,
    /// Where it is among a known number of steps (a bar).
    Steps { step: Option<u32>, of: u32 },
    /// A line of its own: the step drawn ends.
    Line,
    /// A line above what is drawn, which goes on.
    Above,
}

/// An event of one target, as [`OneTarget`] draws it.
pub trait TargetEvent {
    /// What it shows.
    fn shown(&self) -> Shown;
    /// Its words on a bar (and as a line of its own on a terminal).
    fn text(&self) -> String;
    /// Its line when lines are drawn (no terminal).
    fn line(&self) -> String {
        self.text()
    }
}

/// Draws one target: a spinner per step (or a bar of steps) on a terminal, plain lines on
/// stderr otherwise, nothing with `-o json`.
pub struct OneTarget {
    mode: Mode,
    bar: Option<ProgressBar>,
    /// Clear the bar at the end (a bar of steps) rather than leave it.
    clear: bool,
    /// Show build log lines.
    logs: bool,
    dropped: DropNotes,
}

impl OneTarget {
    /// `logs`: show the build log lines (even with `-o json`, on stderr).
    pub fn new(format: OutputFormat, logs: bool) -> Self {
        OneTarget {
            mode: mode(format, true),
            bar: None,
            clear: false,
            logs,
            dropped: DropNotes::default(),
        }
    }

    /// With a bar of `of` steps drawn at once, saying `text` until the first event.
    pub fn with_steps(mut self, of: u32, text: &str) -> Self {
        if self.mode == Mode::Bars {
            let bar = step_bar(of);
            bar.set_message(text.to_string());
            self.bar = Some(bar);
            self.clear = true;
        }
        self
    }

    /// Prints one log line above the spinner (or alone). It is written before the next event
    /// is read: while the terminal is slow, the operation's event buffer (bounded in bytes)
    /// drops the oldest lines and says how many.
    fn print_log(&self, line: String) {
        match &self.bar {
            Some(bar) if self.mode == Mode::Bars => bar.println(out::shown(&line)),
            _ => out::err(line),
        }
    }

    fn end_step(&mut self) {
        if let Some(note) = self.dropped.take(true) {
            self.print_log(note);
        }
        if let Some(bar) = self.bar.take() {
            if self.clear {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        }
    }

    fn draw(&mut self, e: &impl TargetEvent) {
        match e.shown() {
            Shown::Begin { label, again } => match &self.bar {
                Some(bar) if again && bar.prefix() == label => bar.set_message(e.text()),
                _ => {
                    self.end_step();
                    let bar = spinner(label.to_string());
                    bar.set_message(e.text());
                    self.bar = Some(bar);
                }
            },
            Shown::Update => match &self.bar {
                Some(bar) => bar.set_message(e.text()),
                None => out::err(e.text()),
            },
            Shown::End => match self.bar.take() {
                Some(bar) => bar.finish_with_message(e.text()),
                None => out::err(e.text()),
            },
            Shown::Line => {
                self.end_step();
                out::err(e.text());
            }
            Shown::Steps { step, of } => {
                let bar = self.bar.get_or_insert_with(|| step_bar(of));
                self.clear = true;
                if let Some(step) = step {
                    bar.set_position(u64::from(step));
                }
                bar.set_message(e.text());
            }
            Shown::Above => match &self.bar {
                Some(bar) => bar.suspend(|| out::err(e.text())),
                None => out::err(e.text()),
            },
            Shown::Log(_) | Shown::Dropped(_) => {}
        }
    }
}

impl<E: TargetEvent> Render<E> for OneTarget {
    fn event(&mut self, e: E) {
        match e.shown() {
            Shown::Log(output) => {
                if self.logs {
                    if let Some(note) = self.dropped.take(false) {
                        self.print_log(note);
                    }
                    // The server's words, on one line: a line break in them is escaped too,
                    // so that no log line can start a line that looks like fleet's own.
                    self.print_log(format!("  | {}", escape_one_line(&output)));
                }
                return;
            }
            Shown::Dropped(count) => {
                if self.logs {
                    self.dropped.add(count);
                    if let Some(note) = self.dropped.take(false) {
                        self.print_log(note);
                    }
                }
                return;
            }
            _ => {}
        }
        if let Some(note) = self.dropped.take(true) {
            self.print_log(note);
        }
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => out::err(e.line()),
            Mode::Bars => self.draw(&e),
        }
    }

    fn finish(&mut self) {
        self.end_step();
    }
}

fn spinner(prefix: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, out::progress_target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:>7} [{elapsed}] {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(prefix);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn step_bar(of: u32) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(u64::from(of)), out::progress_target());
    let style =
        ProgressStyle::with_template("{spinner} [{bar:24}] step {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

// ---------------------------------------------------------------------------------------------
// Many targets
// ---------------------------------------------------------------------------------------------

/// What an event of a batch shows.
pub enum ManyShown {
    /// The targets are known: this many.
    Total(usize),
    /// Target `key` begins, its line labelled `label`.
    Begin { key: String, label: String },
    /// Target `key` moves on (its line begins when it has none yet).
    Step { key: String, label: String },
    /// Target `key` ended; `done` have; `last` for the total's line.
    Finished {
        key: String,
        label: String,
        done: usize,
        last: Option<String>,
    },
    /// A line above the bars; with `one_fewer`, one target less is waited for.
    Note { one_fewer: bool },
    /// A line of a build's log (shown only when logs are asked for).
    Log,
    /// This many log lines were dropped.
    Dropped(u64),
}

/// An event of a batch, as [`ManyTargets`] draws it.
pub trait ManyEvent {
    /// What it shows.
    fn shown(&self) -> ManyShown;
    /// Its words on its target's line (or above the bars).
    fn text(&self) -> String;
    /// Its line when lines are drawn (no terminal); `None`: nothing.
    fn line(&self) -> Option<String>;
}

/// Above this many targets, a finished target's line is cleared (the total stays).
const KEEP_LINES_UP_TO: usize = 24;

/// Draws a batch: on a terminal one line per target plus a total; plain lines on stderr
/// otherwise; nothing with `-o json` (but the build logs when asked for).
pub struct ManyTargets {
    mode: Mode,
    logs: bool,
    dropped: DropNotes,
    multi: MultiProgress,
    total: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    keep: bool,
}

impl ManyTargets {
    /// `logs`: show the build log lines; `bars`: draw bars on a terminal (else lines).
    pub fn new(format: OutputFormat, logs: bool, bars: bool) -> Self {
        let mode = match (format, logs) {
            (OutputFormat::Json, true) => Mode::Lines,
            _ => mode(format, bars),
        };
        ManyTargets {
            mode,
            logs,
            dropped: DropNotes::default(),
            multi: MultiProgress::with_draw_target(out::progress_target()),
            total: None,
            bars: HashMap::new(),
            keep: true,
        }
    }

    /// With the total drawn at once (the targets are known).
    pub fn with_total(mut self, count: usize) -> Self {
        self.draw_total(count);
        self
    }

    fn draw_total(&mut self, count: usize) {
        if self.mode != Mode::Bars || self.total.is_some() {
            return;
        }
        self.keep = count <= KEEP_LINES_UP_TO;
        let bar = self.multi.add(ProgressBar::new(count as u64));
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {prefix:>7} [{bar:24}] {pos}/{len} done ({elapsed}) {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix("total");
        bar.enable_steady_tick(Duration::from_millis(120));
        self.total = Some(bar);
    }

    fn line_of(&mut self, key: &str, label: &str) -> &ProgressBar {
        let (multi, total) = (&self.multi, &self.total);
        self.bars.entry(key.to_string()).or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {wide_msg}")
            {
                bar.set_style(style);
            }
            let bar = match total {
                Some(t) => multi.insert_before(t, bar),
                None => multi.add(bar),
            };
            bar.set_prefix(out::shown(&escape_one_line(label)));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }

    fn draw(&mut self, e: &impl ManyEvent) {
        match e.shown() {
            ManyShown::Total(count) => self.draw_total(count),
            ManyShown::Begin { key, label } => {
                self.line_of(&key, &label).set_message("reading");
            }
            ManyShown::Step { key, label } => {
                let text = out::shown(&e.text());
                self.line_of(&key, &label).set_message(text);
            }
            ManyShown::Finished {
                key,
                label,
                done,
                last,
            } => {
                let text = e.text();
                match self.bars.remove(&key) {
                    Some(bar) if self.keep => bar.finish_with_message(out::shown(&text)),
                    Some(bar) => bar.finish_and_clear(),
                    None if self.keep => {
                        let _ = self
                            .multi
                            .println(out::shown(&format!("{} {text}", escape_one_line(&label))));
                    }
                    None => {}
                }
                if let Some(t) = &self.total {
                    t.set_position(done as u64);
                    if let Some(last) = last {
                        t.set_message(out::shown(&last));
                    }
                }
            }
            ManyShown::Note { one_fewer } => {
                if one_fewer {
                    if let Some(t) = &self.total {
                        t.set_length(t.length().unwrap_or(1).saturating_sub(1));
                    }
                }
                let _ = self.multi.println(out::shown(&e.text()));
            }
            // The bars show the latest step of each target: nothing was lost there.
            ManyShown::Log | ManyShown::Dropped(_) => {}
        }
    }
}

impl<E: ManyEvent> Render<E> for ManyTargets {
    fn event(&mut self, e: E) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                let shown = e.shown();
                match shown {
                    ManyShown::Log | ManyShown::Dropped(_) if !self.logs => return,
                    ManyShown::Dropped(count) => {
                        self.dropped.add(count);
                        if let Some(note) = self.dropped.take(false) {
                            out::err(note);
                        }
                        return;
                    }
                    _ => {}
                }
                let Some(line) = e.line() else { return };
                let now = !matches!(shown, ManyShown::Log);
                if let Some(note) = self.dropped.take(now) {
                    out::err(note);
                }
                out::err(line);
            }
            Mode::Bars => self.draw(&e),
        }
    }

    fn finish(&mut self) {
        if let Some(note) = self.dropped.take(true) {
            out::err(note);
        }
        for (_, bar) in self.bars.drain() {
            bar.abandon();
        }
        if let Some(t) = self.total.take() {
            t.finish();
        }
    }
}
