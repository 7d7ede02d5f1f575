//! When fleet reads a build's status: backing off, and checking often around the time the
//! template's statistics say the build should end.

use std::time::Duration;

use fleet::coder::{ExpectedDuration, PollOptions};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// The instants (ms after creation) at which a build is read, up to `until`.
fn schedule(poll: &PollOptions, expected: Option<&ExpectedDuration>, until: Duration) -> Vec<u64> {
    let (mut elapsed, mut current, mut reads) = (Duration::ZERO, poll.initial, vec![]);
    while elapsed < until {
        let (pause, next) = poll.pause(current, elapsed, expected);
        assert!(pause > Duration::ZERO, "a pause is never zero");
        elapsed += pause;
        current = next;
        reads.push(elapsed.as_millis() as u64);
    }
    reads
}

#[test]
fn without_statistics_it_backs_off_to_the_cap() {
    let poll = PollOptions::default();
    let reads = schedule(&poll, None, Duration::from_secs(60));
    assert_eq!(&reads[..4], &[100, 250, 475, 812], "{reads:?}");
    let gaps: Vec<u64> = reads.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g <= 2000), "{gaps:?}");
    assert!(reads.len() < 40, "a minute costs {} reads", reads.len());
}

#[test]
fn around_the_expected_end_it_reads_every_100_ms_then_backs_off_again() {
    let poll = PollOptions::default();
    let expected = ExpectedDuration {
        p50: MS(30_000),
        p95: MS(33_000),
    };
    let reads = schedule(&poll, Some(&expected), Duration::from_secs(60));
    // Awake exactly when the window opens, a second before the median …
    assert!(reads.contains(&29_000), "{reads:?}");
    // … every 100 ms until a second after the 95th percentile …
    let window: Vec<&u64> = reads
        .iter()
        .filter(|r| (29_000..=34_000).contains(*r))
        .collect();
    assert!(window.windows(2).all(|w| w[1] - w[0] <= 100), "{window:?}");
    assert_eq!(window.len(), 51, "{window:?}");
    // … then backing off again; a minute costs a bounded number of reads.
    let after: Vec<u64> = reads.iter().copied().filter(|r| *r > 34_000).collect();
    assert!(after.windows(2).all(|w| w[1] - w[0] >= 100), "{after:?}");
    assert!(
        after.windows(2).last().is_some_and(|w| w[1] - w[0] == 2000),
        "{after:?}"
    );
    let without = schedule(&poll, None, Duration::from_secs(60)).len();
    assert!(
        reads.len() <= without + 60,
        "{} reads vs {without}",
        reads.len()
    );
}

#[test]
fn a_wide_spread_is_watched_closely_for_the_window_at_most() {
    let poll = PollOptions::default();
    let expected = ExpectedDuration {
        p50: MS(10_000),
        p95: MS(300_000),
    };
    let reads = schedule(&poll, Some(&expected), Duration::from_secs(120));
    let close = reads.windows(2).filter(|w| w[1] - w[0] <= 100).count();
    assert!(
        close <= 125,
        "12 s at 100 ms, plus the window's edges: {close}"
    );
}

#[test]
fn a_short_build_is_read_soon() {
    let poll = PollOptions::default();
    let expected = ExpectedDuration {
        p50: MS(400),
        p95: MS(600),
    };
    let reads = schedule(&poll, Some(&expected), Duration::from_secs(3));
    assert_eq!(reads[0], 100, "{reads:?}");
    assert!(
        reads.iter().filter(|r| **r <= 1_600).count() >= 15,
        "{reads:?}"
    );
}
