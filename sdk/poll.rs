//! One poller for both control planes: how often a status is read while fleet waits for a
//! Coder build or a Molecule migration, until when, what stops it, and which failed reads do
//! not end the wait.
//!
//! - **Backoff**: the first read soon ([`PollOptions::initial`]), then the pause grows
//!   (×[`PollOptions::factor`]) up to [`PollOptions::max`].
//! - **Near-end window**: when the caller knows how long the thing usually takes
//!   ([`ExpectedDuration`]), it is read every [`PollOptions::near_end`] around its expected
//!   end, so completion is noticed within about that, for a few dozen more reads.
//! - **Interval cap**: a caller that wants a fixed pace (a simulator, a test:
//!   `FLEET_POLL_INTERVAL_MS`, `--sim`) sets [`PollOptions::interval_cap`]; it becomes the
//!   longest pause, and no pause is longer.
//! - **Deadline**: the wait ends with [`Polled::TimedOut`] when it passes (a read is cut short
//!   by it too).
//! - **Cancel**: the wait ends with [`Polled::Cancelled`] on the operation's
//!   [`Control`]: on any cancel, or only on an abort ([`Poller::stop_on_abort_only`], for a
//!   wait that must see a stop through to its start).
//! - **Transient errors** — one rule for both planes, [`is_transient`]: a read that fails with
//!   a transport error (no answer, a reset, a timeout) or with HTTP 429, 500, 502, 503 or 504
//!   does not end the wait: the next read may well succeed (the HTTP layer has already
//!   retried 429/502/503/504 and transport errors a few times with backoff; a 500 is not
//!   retried there, since a single read should report it at once, but a wait reads again
//!   anyway). Such failures end the wait only once reads have kept failing for
//!   [`PollOptions::failing_limit`] (then the last error is returned, saying so), or at the
//!   deadline (whose error names the last problem). Every other failure (400, 401/403, 404,
//!   409, an answer that cannot be read, …) ends the wait at once: reading again would give
//!   the same answer.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{Error, Result, operation::Control};

/// How often a status is read while fleet waits (see the [module](self) documentation).
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// The first pause (after the thing was created, or found in progress).
    pub initial: Duration,
    /// The longest pause between two reads.
    pub max: Duration,
    /// How much the pause grows after each read (≥ 1).
    pub factor: f64,
    /// The pause around the expected end (see [`ExpectedDuration`]).
    pub near_end: Duration,
    /// The longest stretch read every `near_end`.
    pub near_end_window: Duration,
    /// A caller's pace: when set, it is the longest pause (in place of `max`), and the first
    /// pause and the near-end pause are no longer than it.
    pub interval_cap: Option<Duration>,
    /// Transient failures (see [`is_transient`]) end the wait once reads have kept failing
    /// for this long.
    pub failing_limit: Duration,
}

impl Default for PollOptions {
    /// 100 ms, growing ×1.5 to 2 s; every 100 ms for at most 12 s around an expected end;
    /// transient failures tolerated for 2 minutes in a row.
    fn default() -> Self {
        PollOptions {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 1.5,
            near_end: Duration::from_millis(100),
            near_end_window: Duration::from_secs(12),
            interval_cap: None,
            failing_limit: Duration::from_secs(120),
        }
    }
}

impl PollOptions {
    /// Plain backoff from `initial`, ×`factor`, up to `max` (no near-end window unless a
    /// wait has an [`ExpectedDuration`]).
    pub fn backoff(initial: Duration, max: Duration, factor: f64) -> Self {
        PollOptions {
            initial,
            max,
            factor,
            ..PollOptions::default()
        }
    }

    /// The same options with a caller's pace (`None` leaves them as they are).
    pub fn with_interval_cap(mut self, cap: Option<Duration>) -> Self {
        if cap.is_some() {
            self.interval_cap = cap;
        }
        self
    }

    /// The longest pause.
    fn max_pause(&self) -> Duration {
        self.interval_cap
            .unwrap_or(self.max)
            .max(Duration::from_millis(1))
    }

    /// The first pause.
    pub fn first(&self) -> Duration {
        self.initial
            .min(self.max_pause())
            .max(Duration::from_millis(1))
    }

    fn next(&self, current: Duration) -> Duration {
        current.mul_f64(self.factor.max(1.0)).min(self.max_pause())
    }

    /// The pause before the next read, `elapsed` after the wait began, when the backoff has
    /// reached `current`; and the backoff to carry on with.
    pub fn pause(
        &self,
        current: Duration,
        elapsed: Duration,
        expected: Option<&ExpectedDuration>,
    ) -> (Duration, Duration) {
        let current = current.min(self.max_pause());
        let near_end = self
            .near_end
            .max(Duration::from_millis(10))
            .min(self.max_pause());
        if let Some(e) = expected {
            let lead = Duration::from_secs(1);
            let from = e.p50.saturating_sub(lead);
            let until = (e.p95.max(e.p50) + lead).min(from + self.near_end_window);
            if elapsed >= from && elapsed < until {
                return (near_end, near_end);
            }
            if elapsed < from && elapsed + current > from {
                // Wake up when the window opens rather than sleep through it.
                return ((from - elapsed).max(Duration::from_millis(1)), current);
            }
        }
        (current, self.next(current))
    }
}

/// How long the thing waited for usually takes (for a Coder build: its template's
/// `build_time_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExpectedDuration {
    /// The median.
    #[serde(serialize_with = "as_millis")]
    #[schemars(with = "u64")]
    pub p50: Duration,
    /// The 95th percentile.
    #[serde(serialize_with = "as_millis")]
    #[schemars(with = "u64")]
    pub p95: Duration,
}

pub(crate) fn as_millis<S: serde::Serializer>(
    d: &Duration,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The one rule, for both planes, of which failed reads do not end a wait: a transport error,
/// or HTTP 429, 500, 502, 503 or 504. See the [module](self) documentation.
pub fn is_transient(e: &Error) -> bool {
    match e.root() {
        Error::Transport(_) => true,
        Error::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}

/// Where one step of a wait ended.
#[derive(Debug)]
pub enum Polled<T> {
    /// A read answered.
    Read(T),
    /// The deadline passed.
    TimedOut,
    /// The caller cancelled (or aborted) the wait.
    Cancelled,
}

/// One wait: its schedule, deadline, control and the failures seen. Call [`Poller::next`]
/// for each read.
pub struct Poller<'a> {
    options: &'a PollOptions,
    expected: Option<ExpectedDuration>,
    control: &'a Control,
    abort_only: bool,
    read_at_once: bool,
    deadline: Instant,
    began: Instant,
    interval: Duration,
    reads: u64,
    failing_since: Option<Instant>,
    last_problem: Option<String>,
}

impl<'a> Poller<'a> {
    /// A wait that ends at `deadline` or when `control` is cancelled. The first read comes
    /// after the first pause (see [`Poller::read_at_once`]).
    pub fn new(options: &'a PollOptions, deadline: Instant, control: &'a Control) -> Self {
        Poller {
            options,
            expected: None,
            control,
            abort_only: false,
            read_at_once: false,
            deadline,
            began: Instant::now(),
            interval: options.first(),
            reads: 0,
            failing_since: None,
            last_problem: None,
        }
    }

    /// Reads every `near_end` around the expected end.
    pub fn expecting(mut self, expected: Option<ExpectedDuration>) -> Self {
        self.expected = expected;
        self
    }

    /// Only an abort ends the wait (a graceful cancel does not: the wait must see what is
    /// under way through).
    pub fn stop_on_abort_only(mut self, abort_only: bool) -> Self {
        self.abort_only = abort_only;
        self
    }

    /// The first read comes at once (for a status that may already be final).
    pub fn read_at_once(mut self) -> Self {
        self.read_at_once = true;
        self
    }

    /// Time since the wait began.
    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    /// Reads answered or failed so far.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The last problem a read met (a transient failure, or one the caller noted), if the
    /// last read did not clear it.
    pub fn last_problem(&self) -> Option<&str> {
        self.last_problem.as_deref()
    }

    /// Notes a problem that does not end the wait (an answer that means "not yet").
    pub fn note_problem(&mut self, problem: impl Into<String>) {
        self.last_problem = Some(problem.into());
    }

    async fn stopped(&self) {
        if self.abort_only {
            self.control.aborted().await
        } else {
            self.control.cancelled().await
        }
    }

    /// Pauses (per the schedule), then reads with `read` until a read answers, the deadline
    /// passes or the wait is cancelled. Transient failures are logged and read again; any
    /// other failure is returned.
    pub async fn next<T, F, Fut>(&mut self, mut read: F) -> Result<Polled<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        loop {
            if self.reads > 0 || !self.read_at_once {
                let now = Instant::now();
                if now >= self.deadline {
                    return Ok(Polled::TimedOut);
                }
                let (pause, next) =
                    self.options
                        .pause(self.interval, self.elapsed(), self.expected.as_ref());
                self.interval = next;
                tokio::select! {
                    biased;
                    _ = self.stopped() => return Ok(Polled::Cancelled),
                    _ = tokio::time::sleep(pause.min(self.deadline - now)) => {}
                }
            }
            if Instant::now() >= self.deadline {
                return Ok(Polled::TimedOut);
            }
            self.reads += 1;
            let result = tokio::select! {
                biased;
                _ = self.stopped() => return Ok(Polled::Cancelled),
                r = tokio::time::timeout_at(self.deadline.into(), read()) => r,
            };
            let Ok(result) = result else {
                return Ok(Polled::TimedOut);
            };
            match result {
                Ok(value) => {
                    self.failing_since = None;
                    self.last_problem = None;
                    return Ok(Polled::Read(value));
                }
                Err(e) if is_transient(&e) => {
                    let since = *self.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.options.failing_limit {
                        return Err(kept_failing(e, since.elapsed()));
                    }
                    tracing::warn!(error = %e, "a status read failed; still waiting");
                    self.last_problem = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A transient failure that lasted past the limit: the last error, saying for how long reads
/// kept failing.
fn kept_failing(e: Error, for_how_long: Duration) -> Error {
    let note = format!(
        " (status reads kept failing for {}; fleet stopped waiting)",
        humantime::format_duration(Duration::from_secs(for_how_long.as_secs()))
    );
    e.map_message(|m| format!("{m}{note}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            status,
            message: "m".into(),
            validations: vec![],
        }
    }

    #[test]
    fn the_transient_rule() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(s)), "{s}");
        }
        for s in [400, 405, 406, 410, 422, 501] {
            assert!(!is_transient(&api(s)), "{s}");
        }
        assert!(is_transient(&Error::Transport("reset".into())));
        assert!(!is_transient(&Error::NotFound {
            message: "gone".into()
        }));
        assert!(!is_transient(&Error::Unauthorized {
            status: 401,
            message: "no".into()
        }));
    }

    #[test]
    fn the_interval_cap_tops_every_pause() {
        let o = PollOptions::default().with_interval_cap(Some(Duration::from_millis(30)));
        assert_eq!(o.first(), Duration::from_millis(30));
        let (p, next) = o.pause(Duration::from_secs(5), Duration::ZERO, None);
        assert_eq!(
            (p, next),
            (Duration::from_millis(30), Duration::from_millis(30))
        );
        // A cap above the default max sets the pace (a slow simulator).
        let o = PollOptions::default().with_interval_cap(Some(Duration::from_secs(4)));
        let (_, next) = o.pause(Duration::from_secs(3), Duration::ZERO, None);
        assert_eq!(next, Duration::from_secs(4));
    }

    #[tokio::test]
    async fn transient_failures_are_read_again_until_the_limit() {
        let ms = Duration::from_millis;
        let options = PollOptions {
            failing_limit: ms(300),
            ..PollOptions::backoff(ms(5), ms(20), 2.0)
        };
        let control = Control::new();
        let deadline = Instant::now() + Duration::from_secs(3600);
        // Two 500s, then an answer.
        let mut n = 0;
        let mut p = Poller::new(&options, deadline, &control);
        let got = p
            .next(|| {
                n += 1;
                let k = n;
                async move { if k < 3 { Err(api(500)) } else { Ok(k) } }
            })
            .await
            .unwrap();
        assert!(matches!(got, Polled::Read(3)));
        assert_eq!(p.reads(), 3);
        // A 400 ends it at once.
        let got = p.next(|| async { Err::<u32, _>(api(400)) }).await;
        assert!(matches!(got, Err(Error::Api { status: 400, .. })));
        assert_eq!(p.reads(), 4);
        // 503s forever end it once they lasted the limit, saying so.
        let began = Instant::now();
        let got = p.next(|| async { Err::<u32, _>(api(503)) }).await;
        let Err(Error::Api {
            status: 503,
            message,
            ..
        }) = got
        else {
            panic!("{got:?}")
        };
        assert!(message.contains("kept failing"), "{message}");
        assert!(began.elapsed() >= ms(300));
        assert!(began.elapsed() < ms(3000));
    }

    #[tokio::test]
    async fn deadline_and_cancel_end_the_wait() {
        let options =
            PollOptions::backoff(Duration::from_millis(5), Duration::from_millis(20), 2.0);
        let control = Control::new();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut p = Poller::new(&options, deadline, &control);
        let got = p.next(|| async { Err::<u32, _>(api(502)) }).await.unwrap();
        assert!(matches!(got, Polled::TimedOut));
        assert!(p.last_problem().is_some());

        let deadline = Instant::now() + Duration::from_secs(60);
        let mut p = Poller::new(&options, deadline, &control).stop_on_abort_only(true);
        control.cancel();
        // A graceful cancel does not end an abort-only wait …
        let got = p.next(|| async { Ok::<_, Error>(1) }).await.unwrap();
        assert!(matches!(got, Polled::Read(1)));
        // … an abort does; a plain wait ends on the graceful cancel.
        let mut plain = Poller::new(&options, deadline, &control);
        assert!(matches!(
            plain.next(|| async { Ok::<_, Error>(1) }).await.unwrap(),
            Polled::Cancelled
        ));
        control.abort();
        assert!(matches!(
            p.next(|| async { Ok::<_, Error>(1) }).await.unwrap(),
            Polled::Cancelled
        ));
    }
}
