//! The rollout engine: one for both planes (Coder updates, Molecule migrations).
//!
//! Kubernetes-style controls over a list of targets, each run by a caller-given closure:
//! - **parallel**: at most this many targets in flight;
//! - **canary**: the first N targets run first (at most `parallel` of them at once); the rest
//!   start only if every canary ended well;
//! - **max failures**: once K targets have failed, no new target starts (those in flight
//!   finish);
//! - **graceful stop**: once the [`Control`] is cancelled, no new target starts (those in
//!   flight finish, as their own sequences say).
//!
//! Every target not started is handed back through the caller's `skipped` closure with the
//! reason ([`HaltReason`]), so the report lists it. Resuming is a re-run: the planes skip what
//! is already done, so the engine keeps no state between runs.

use std::{future::Future, ops::RangeInclusive, time::Duration};

use futures::{StreamExt, stream::FuturesUnordered};
use serde::Serialize;

use crate::{Error, Input, Result, operation::Control};

/// The controls of a rollout. Each control's default and range live here, once, for both
/// planes and both faces: [`RolloutOptions::check`] refuses a value out of its range with
/// [`Error::out_of_range`] (nothing sent), and nothing clamps a value in silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutOptions {
    /// At most this many targets in flight ([`RolloutOptions::PARALLEL_RANGE`]).
    pub parallel: usize,
    /// The first this many targets run first; the rest only if all of them end well (0: no
    /// canary; [`RolloutOptions::CANARY_RANGE`]).
    pub canary: usize,
    /// Once this many targets have failed, start no more (`None`: no budget;
    /// [`RolloutOptions::MAX_FAILURES_RANGE`]).
    pub max_failures: Option<usize>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        RolloutOptions {
            parallel: Self::DEFAULT_PARALLEL,
            canary: 0,
            max_failures: None,
        }
    }
}

impl RolloutOptions {
    /// How many targets run at once unless told.
    pub const DEFAULT_PARALLEL: usize = 4;
    /// How many targets may run at once.
    pub const PARALLEL_RANGE: RangeInclusive<usize> = 1..=64;
    /// How many canaries a rollout may have (0: none).
    pub const CANARY_RANGE: RangeInclusive<usize> = 0..=100_000;
    /// The failure budgets a rollout may have (left out: no budget).
    pub const MAX_FAILURES_RANGE: RangeInclusive<usize> = 1..=100_000;

    /// `parallel`, when it is in [`RolloutOptions::PARALLEL_RANGE`].
    pub fn check_parallel(parallel: usize) -> Result<usize> {
        within(Input::Parallel, parallel, &Self::PARALLEL_RANGE)
    }

    /// `canary`, when it is in [`RolloutOptions::CANARY_RANGE`].
    pub fn check_canary(canary: usize) -> Result<usize> {
        within(Input::Canary, canary, &Self::CANARY_RANGE)
    }

    /// `max_failures`, when it is in [`RolloutOptions::MAX_FAILURES_RANGE`].
    pub fn check_max_failures(max_failures: usize) -> Result<usize> {
        within(Input::MaxFailures, max_failures, &Self::MAX_FAILURES_RANGE)
    }

    /// Checks every control against its range: [`Error::InvalidInput`] (nothing sent) naming
    /// the first one out of range, with [`crate::Remedy::GiveWithin`].
    pub fn check(&self) -> Result<()> {
        Self::check_parallel(self.parallel)?;
        Self::check_canary(self.canary)?;
        if let Some(k) = self.max_failures {
            Self::check_max_failures(k)?;
        }
        Ok(())
    }
}

/// `value` when `range` holds it, else [`Error::out_of_range`] for `input`.
fn within(input: Input, value: usize, range: &RangeInclusive<usize>) -> Result<usize> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(Error::out_of_range(
        input,
        value as u64,
        *range.start() as u64,
        *range.end() as u64,
    ))
}

/// `value` when `range` holds it, else [`Error::out_of_range`] for `input`, in seconds.
pub(crate) fn within_duration(
    input: Input,
    value: Duration,
    range: &RangeInclusive<Duration>,
) -> Result<Duration> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(Error::out_of_range(
        input,
        value.as_secs(),
        range.start().as_secs(),
        range.end().as_secs(),
    ))
}

/// How long a caller (an MCP tool call) waits for a long operation before it answers, unless
/// told: well under the 60 s most MCP hosts give a call.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// How long a caller may wait for a long operation before it answers (0: answer at once).
pub const WAIT_RANGE: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(300);

/// A wait, when it is in [`WAIT_RANGE`].
pub fn check_wait(wait: Duration) -> Result<Duration> {
    within_duration(Input::Wait, wait, &WAIT_RANGE)
}

/// How the engine counts one target's ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Ended well (done, or nothing to do).
    Ok,
    /// Failed: counts against the budget and fails a canary.
    Failure,
    /// Neither (interrupted, refused before anything was changed): fails a canary, does not
    /// count against the budget.
    Neutral,
    /// Left alone on purpose (someone is at work in it): neither fails a canary nor counts
    /// against the budget.
    Skipped,
}

/// Why a rollout started no more targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HaltReason {
    /// A canary did not end well.
    CanaryFailed,
    /// The failure budget (max failures) was used up.
    MaxFailures,
    /// Cancelled (Ctrl-C, cancel_operation): what was in flight was finished.
    Cancelled,
}

impl std::fmt::Display for HaltReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HaltReason::CanaryFailed => "a canary did not end well",
            HaltReason::MaxFailures => "the failure budget was used up",
            HaltReason::Cancelled => "cancelled",
        })
    }
}

/// Why a rollout halted, and what it left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Halt {
    /// Why no more targets were started.
    pub reason: HaltReason,
    /// How many targets had failed by then.
    pub failures: usize,
    /// The targets never started, in order.
    pub not_attempted: Vec<String>,
}

/// What [`run`] returns: one result per target, in the targets' order, and the halt if any.
#[derive(Debug)]
pub struct RolloutRun<R> {
    /// One result per target, in order.
    pub results: Vec<R>,
    /// Why it stopped early, when it did.
    pub halt: Option<Halt>,
}

/// Runs `run_one` over `targets` under the controls. `judge` says how a result counts;
/// `skipped` makes the result of a target never started (with why); `label` names a target
/// for the halt's list. The controls must have passed [`RolloutOptions::check`] (every
/// public way in checks them before anything is sent); nothing here adjusts them.
pub async fn run<T, R, Fut>(
    targets: Vec<T>,
    options: &RolloutOptions,
    control: &Control,
    label: impl Fn(&T) -> String,
    run_one: impl Fn(usize, T) -> Fut,
    judge: impl Fn(&R) -> Judgement,
    skipped: impl Fn(usize, T, HaltReason) -> R,
) -> RolloutRun<R>
where
    Fut: Future<Output = R>,
{
    let total = targets.len();
    let canary = options.canary.min(total);
    // Unchecked controls are never adjusted: with parallel 0 nothing starts, and every
    // target is handed back as not attempted.
    let parallel = options.parallel;
    let mut slots: Vec<Option<R>> = (0..total).map(|_| None).collect();
    let mut queue = targets.into_iter().enumerate();
    let mut in_flight = FuturesUnordered::new();
    let (mut started, mut done, mut failures) = (0usize, 0usize, 0usize);
    let mut canary_failed = false;
    let mut halt: Option<HaltReason> = None;
    loop {
        if halt.is_none() && canary_failed {
            halt = Some(HaltReason::CanaryFailed);
        }
        while halt.is_none() && in_flight.len() < parallel {
            // The canaries first, all of them ended, before anything else starts.
            if started >= canary && done < canary {
                break;
            }
            if control.is_cancelled() {
                halt = Some(HaltReason::Cancelled);
                break;
            }
            if options.max_failures.is_some_and(|k| failures >= k) {
                halt = Some(HaltReason::MaxFailures);
                break;
            }
            let Some((index, target)) = queue.next() else {
                break;
            };
            started += 1;
            let fut = run_one(index, target);
            in_flight.push(async move { (index, fut.await) });
        }
        let Some((index, result)) = in_flight.next().await else {
            break;
        };
        done += 1;
        match judge(&result) {
            Judgement::Ok => {}
            Judgement::Failure => {
                failures += 1;
                canary_failed |= index < canary;
            }
            Judgement::Neutral => canary_failed |= index < canary,
            Judgement::Skipped => {}
        }
        slots[index] = Some(result);
    }
    let mut not_attempted = Vec::new();
    let reason = halt.unwrap_or(HaltReason::Cancelled);
    for (index, target) in queue {
        not_attempted.push(label(&target));
        slots[index] = Some(skipped(index, target, reason));
    }
    let halt = (!not_attempted.is_empty()).then_some(Halt {
        reason,
        failures,
        not_attempted,
    });
    RolloutRun {
        results: slots.into_iter().flatten().collect(),
        halt,
    }
}

/// The caller's `on_event` shared by the targets of a batch running at once (behind a lock),
/// and how many of them have ended.
pub(crate) struct BatchSink<F> {
    on_event: std::sync::Mutex<F>,
    done: std::sync::atomic::AtomicUsize,
}

impl<F> BatchSink<F> {
    pub(crate) fn new(on_event: F) -> Self {
        BatchSink {
            on_event: std::sync::Mutex::new(on_event),
            done: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Hands `event` to the caller's `on_event`.
    pub(crate) fn emit<E>(&self, event: E)
    where
        F: FnMut(E),
    {
        if let Ok(mut f) = self.on_event.lock() {
            f(event)
        }
    }

    /// Counts one more target ended: how many have, this one included.
    pub(crate) fn one_done(&self) -> usize {
        self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn go(
        outcomes: &[Judgement],
        options: RolloutOptions,
    ) -> (Vec<String>, Option<Halt>, usize) {
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let now = std::sync::atomic::AtomicUsize::new(0);
        let control = Control::new();
        let run = run(
            outcomes.iter().copied().enumerate().collect(),
            &options,
            &control,
            |(i, _)| format!("t{i}"),
            |_, (i, j)| {
                let (peak, now) = (&peak, &now);
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let n = now.fetch_add(1, SeqCst) + 1;
                    peak.fetch_max(n, SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5 + i as u64)).await;
                    now.fetch_sub(1, SeqCst);
                    (format!("t{i}"), j)
                }
            },
            |(_, j)| *j,
            |_, (i, _), why| (format!("t{i} skipped: {why:?}"), Judgement::Neutral),
        )
        .await;
        let names = run.results.into_iter().map(|(n, _)| n).collect();
        (names, run.halt, peak.into_inner())
    }

    const OK: Judgement = Judgement::Ok;
    const BAD: Judgement = Judgement::Failure;

    #[tokio::test]
    async fn a_failed_canary_starts_nothing_else() {
        let options = RolloutOptions {
            parallel: 4,
            canary: 1,
            max_failures: None,
        };
        let (names, halt, _) = go(&[BAD, OK, OK], options).await;
        assert_eq!(
            names,
            ["t0", "t1 skipped: CanaryFailed", "t2 skipped: CanaryFailed"]
        );
        let halt = halt.expect("halted");
        assert_eq!(halt.reason, HaltReason::CanaryFailed);
        assert_eq!(halt.not_attempted, ["t1", "t2"]);
    }

    #[tokio::test]
    async fn the_budget_stops_new_starts_and_parallel_is_a_ceiling() {
        let options = RolloutOptions {
            parallel: 1,
            canary: 0,
            max_failures: Some(2),
        };
        let (names, halt, peak) = go(&[OK, BAD, OK, BAD, OK, OK], options).await;
        assert_eq!(&names[..4], ["t0", "t1", "t2", "t3"]);
        assert!(names[4].ends_with("MaxFailures"), "{names:?}");
        assert_eq!(halt.expect("halted").failures, 2);
        assert_eq!(peak, 1);
        let options = RolloutOptions {
            parallel: 3,
            canary: 2,
            max_failures: None,
        };
        let (names, halt, peak) = go(&[OK; 8], options).await;
        assert!(halt.is_none());
        assert_eq!(names.len(), 8);
        assert_eq!(peak, 3);
    }
}
