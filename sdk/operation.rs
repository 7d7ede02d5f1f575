//! Long operations as values.
//!
//! An update, a restart, a batch update and following a migration each start as an
//! [`Operation`]: a spawned task with a handle that gives its id, kind and targets, a snapshot
//! of its state ([`Operation::snapshot`], [`Operation::watch`]), a stream of its typed events
//! ([`Operation::events`]), a graceful [`Operation::cancel`], an [`Operation::abort`] and the
//! awaitable outcome ([`Operation::outcome`]). Dropping every handle never stops the operation.
//!
//! - **cancel** is graceful: the operation starts nothing new (no stop build, no workspace of
//!   a batch not yet begun), and every stop already under way is followed by its start.
//! - **abort** leaves things as they are at once; the outcome says exactly what is left
//!   (a workspace stopped, a build still running) and what would finish it.
//!
//! [`Registry`] keeps operations by id (finished ones for a while), for a server that lets a
//! caller come back to an operation later (fleet-mcp's `get_operation`).
//!
//! The shape follows oxide.rs's `execute_with_control()`: the work runs on its own, and the
//! caller holds a handle with a progress watch and a cancel.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::sync::{
    Notify,
    broadcast::error::{RecvError, TryRecvError},
    watch,
};
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Control: graceful cancel and abort
// ---------------------------------------------------------------------------------------------

/// How a caller stops an operation: [`Control::cancel`] (graceful) or [`Control::abort`].
///
/// A plain [`CancellationToken`] converts into a `Control` whose token *aborts*: cancelling it
/// leaves things as they are (the behaviour of the `async fn`s that take a token).
#[derive(Debug, Clone, Default)]
pub struct Control {
    graceful: CancellationToken,
    abort: CancellationToken,
}

impl Control {
    /// A control nobody has used yet.
    pub fn new() -> Self {
        Control::default()
    }

    /// Graceful: start nothing new; let every stop already under way be followed by its start.
    pub fn cancel(&self) {
        self.graceful.cancel();
    }

    /// Leave things as they are now; the outcome says what is left.
    pub fn abort(&self) {
        self.abort.cancel();
        self.graceful.cancel();
    }

    /// True once [`Control::cancel`] or [`Control::abort`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.graceful.is_cancelled() || self.abort.is_cancelled()
    }

    /// True once [`Control::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Resolves once the operation was cancelled (gracefully or not).
    pub async fn cancelled(&self) {
        tokio::select! {
            _ = self.graceful.cancelled() => {}
            _ = self.abort.cancelled() => {}
        }
    }

    /// Resolves once the operation was aborted.
    pub async fn aborted(&self) {
        self.abort.cancelled().await
    }
}

impl From<&CancellationToken> for Control {
    /// The token aborts: cancelling it leaves things as they are.
    fn from(token: &CancellationToken) -> Self {
        Control {
            graceful: CancellationToken::new(),
            abort: token.clone(),
        }
    }
}

impl From<CancellationToken> for Control {
    fn from(token: CancellationToken) -> Self {
        Control::from(&token)
    }
}

impl From<&Control> for Control {
    fn from(c: &Control) -> Self {
        c.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// What an operation is and where it stands
// ---------------------------------------------------------------------------------------------

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Update one Coder workspace.
    Update,
    /// Restart one Coder workspace.
    Restart,
    /// Update (or restart) several Coder workspaces.
    BatchUpdate,
    /// Follow a Molecule migration.
    FollowMigration,
    /// Start a Molecule migration and follow it.
    Migrate,
    /// Migrate several Molecule workspaces as a rollout (canary, failure budget), or start
    /// several migrations and follow them.
    MigrationRollout,
    /// Plan an update or a restart of one Coder workspace (reads only: a dry run).
    DryRun,
    /// Wait until a Coder workspace's agents are ready.
    Readiness,
    /// Read or follow the migrations of several Molecule workspaces.
    FollowMigrations,
    /// Promote a Coder template version: canaries, promotion, rollout (rollback of a failed
    /// canary).
    Promote,
    /// Roll a Coder template back to a previous version, and its workspaces with it.
    Rollback,
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperationKind::Update => "update",
            OperationKind::Restart => "restart",
            OperationKind::BatchUpdate => "batch update",
            OperationKind::FollowMigration => "follow migration",
            OperationKind::Migrate => "migrate",
            OperationKind::MigrationRollout => "migration rollout",
            OperationKind::DryRun => "dry run",
            OperationKind::Readiness => "readiness",
            OperationKind::FollowMigrations => "follow migrations",
            OperationKind::Promote => "promote",
            OperationKind::Rollback => "rollback",
        })
    }
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Under way.
    Running,
    /// Cancelled gracefully: finishing what is in flight, starting nothing new.
    Cancelling,
    /// Ended well.
    Succeeded,
    /// Ended in failure (the outcome says what and what is left).
    Failed,
    /// A deadline passed; something may still be running on the server.
    TimedOut,
    /// Ended after a graceful cancel: what was in flight was finished, nothing new started.
    Cancelled,
    /// Aborted: left as it was; the outcome says what is left.
    Aborted,
}

impl OperationState {
    /// True once the operation has ended.
    pub fn is_done(self) -> bool {
        !matches!(self, OperationState::Running | OperationState::Cancelling)
    }
}

impl std::fmt::Display for OperationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OperationState::Running => "running",
            OperationState::Cancelling => "cancelling",
            OperationState::Succeeded => "succeeded",
            OperationState::Failed => "failed",
            OperationState::TimedOut => "timed_out",
            OperationState::Cancelled => "cancelled",
            OperationState::Aborted => "aborted",
        })
    }
}

/// Where one target (a workspace) of an operation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TargetStatus {
    /// The workspace.
    pub target: String,
    /// What it is doing now (`done` once it ended).
    #[schemars(with = "String")]
    pub phase: Phase,
    /// How it ended (its verdict), once it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Its latest step, or how it ended, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What one target of an operation is doing now. Serialized as one snake_case word
/// (`waiting`, `queued`, `stopping`, …; a migration's own state as the control plane names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not begun.
    Waiting,
    /// Waiting its turn (a batch, or a cap on builds in flight).
    Queued,
    /// Being planned (reads only).
    Planning,
    /// Planned; nothing sent yet.
    Planned,
    /// Waiting for a build someone else started.
    WaitingForAnotherBuild,
    /// Someone is at work in it: waiting for it to be idle.
    WaitingForIdle,
    /// Already current: nothing to do.
    UpToDate,
    /// Its stop build runs.
    Stopping,
    /// Stopped, its start not yet created.
    Stopped,
    /// Its start build runs.
    Starting,
    /// Started; the agents not yet checked.
    Running,
    /// Waiting for its agents to be ready.
    WaitingForAgents,
    /// A migration in this state, in the control plane's word (kept as it said: a newer
    /// control plane may add states).
    Migration(String),
    /// Ended (its verdict says how).
    Done,
}

impl Phase {
    /// The phase as one snake_case word.
    pub fn as_str(&self) -> &str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Queued => "queued",
            Phase::Planning => "planning",
            Phase::Planned => "planned",
            Phase::WaitingForAnotherBuild => "waiting_for_another_build",
            Phase::WaitingForIdle => "waiting_for_idle",
            Phase::UpToDate => "up_to_date",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::WaitingForAgents => "waiting_for_agents",
            Phase::Migration(state) => state,
            Phase::Done => "done",
        }
    }

    /// True between a stop build's creation and its start's end: a graceful cancel finishes
    /// this stop→start rather than leave the workspace stopped.
    pub fn is_mid_restart(&self) -> bool {
        matches!(self, Phase::Stopping | Phase::Stopped | Phase::Starting)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A snapshot of an operation.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OperationSnapshot {
    /// The operation's id.
    pub id: String,
    /// What it does.
    pub kind: OperationKind,
    /// The workspaces it was started on (as given).
    pub targets: Vec<String>,
    /// Where it stands.
    pub state: OperationState,
    /// True once it has ended.
    pub done: bool,
    /// The latest step, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_step: Option<String>,
    /// How many events it has reported.
    pub events: u64,
    /// One entry per workspace, once they are known.
    pub workspaces: Vec<TargetStatus>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Milliseconds since it started (until it ended, once done).
    pub elapsed_ms: u64,
}

/// An event an operation reports: it says what happened in one sentence and how it moves the
/// operation's targets along.
pub trait OperationEvent: Clone + Send + Sync + 'static {
    /// One line for people.
    fn describe(&self) -> String;
    /// Moves the per-workspace entries along (may add entries).
    fn apply(&self, workspaces: &mut Vec<TargetStatus>);
    /// True for intermediate progress a slow reader may lose first (a build log line): when
    /// an operation's event buffer is full, such events are dropped before any other.
    fn is_log_line(&self) -> bool {
        false
    }
    /// The event that tells a reader that `count` events (mostly log lines) were dropped
    /// because it fell behind, when this kind of event can say so.
    fn dropped(_count: u64) -> Option<Self> {
        None
    }
}

/// The result of an operation: whether it ended well and how each workspace ended.
pub trait OperationOutput: Clone + Send + Sync + 'static {
    /// True when every part of it ended well.
    fn ended_well(&self) -> bool {
        true
    }
    /// Fills in the per-workspace verdicts at the end.
    fn finish(&self, _workspaces: &mut Vec<TargetStatus>) {}
}

// What is left (Aftermath, Severity, FinishStep, FollowStep) lives in `crate::outcome`, a
// floor below this module and `crate::error`; re-exported here so the paths keep working.
pub use crate::outcome::{Aftermath, FinishStep, FollowStep, Severity};

// ---------------------------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------------------------

struct Shared<Ev, T> {
    id: String,
    kind: OperationKind,
    targets: Vec<String>,
    control: Control,
    started: Instant,
    events: Arc<EventLog<Ev>>,
    /// Subscribed before the task started: the first caller of `events()` gets every event.
    first_events: Mutex<Option<EventReceiver<Ev>>>,
    snapshot: watch::Sender<OperationSnapshot>,
    outcome: watch::Sender<Option<Result<T>>>,
}

/// A running (or finished) operation. Cheap to clone; dropping it never stops the operation.
pub struct Operation<Ev, T> {
    shared: Arc<Shared<Ev, T>>,
}

impl<Ev, T> Clone for Operation<Ev, T> {
    fn clone(&self) -> Self {
        Operation {
            shared: self.shared.clone(),
        }
    }
}

impl<Ev, T> std::fmt::Debug for Operation<Ev, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("id", &self.shared.id)
            .field("kind", &self.shared.kind)
            .field("targets", &self.shared.targets)
            .finish_non_exhaustive()
    }
}

/// Hands an operation's events to its handle; given to the operation's body.
pub struct EventSink<Ev, T> {
    shared: Arc<Shared<Ev, T>>,
}

impl<Ev: OperationEvent, T> EventSink<Ev, T> {
    /// Records the event in the snapshot and sends it to every subscriber.
    pub fn emit(&self, event: Ev) {
        let line = event.describe();
        // What the event holds, about: its own size and its text (a log line's output).
        let bytes = std::mem::size_of::<Ev>() + line.len();
        self.shared.snapshot.send_modify(|s| {
            event.apply(&mut s.workspaces);
            s.latest_step = Some(line);
            s.events += 1;
            s.elapsed_ms = ms(self.shared.started.elapsed());
        });
        self.shared.events.push(event, bytes);
    }
}

/// Milliseconds, for the `elapsed_ms` of reports (saturating).
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A new operation id: `op-` and a UUIDv4's 32 hex digits (122 random bits). Knowing the id
/// is what lets a caller read or cancel the operation (see [`Registry`]), so it cannot be
/// guessed.
fn new_id() -> String {
    format!("op-{}", uuid::Uuid::new_v4().simple())
}

impl<Ev: OperationEvent, T: OperationOutput> Operation<Ev, T> {
    /// Starts `body` on its own task (on the current Tokio runtime) and returns its handle.
    /// The body gets the operation's [`Control`] and an [`EventSink`] for its events.
    pub fn spawn<F, Fut>(kind: OperationKind, targets: Vec<String>, body: F) -> Self
    where
        F: FnOnce(Control, EventSink<Ev, T>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let id = new_id();
        let events = EventLog::new(EVENT_BUFFER_BYTES, EVENT_BUFFER_EVENTS);
        let first_events = EventLog::subscribe_from_start(&events);
        let workspaces = targets
            .iter()
            .map(|t| TargetStatus {
                target: t.clone(),
                phase: Phase::Waiting,
                verdict: None,
                message: None,
            })
            .collect();
        let (snapshot, _) = watch::channel(OperationSnapshot {
            id: id.clone(),
            kind,
            targets: targets.clone(),
            state: OperationState::Running,
            done: false,
            latest_step: None,
            events: 0,
            workspaces,
            started_at: chrono::Utc::now().to_rfc3339(),
            elapsed_ms: 0,
        });
        let (outcome, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            id,
            kind,
            targets,
            control: Control::new(),
            started: Instant::now(),
            events,
            first_events: Mutex::new(Some(first_events)),
            snapshot,
            outcome,
        });
        let fut = body(
            shared.control.clone(),
            EventSink {
                shared: shared.clone(),
            },
        );
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let result = fut.await;
            let control = &task_shared.control;
            let state = match &result {
                Ok(_) if control.is_aborted() => OperationState::Aborted,
                Ok(t) if !t.ended_well() && control.is_cancelled() => OperationState::Cancelled,
                Ok(t) if !t.ended_well() => OperationState::Failed,
                Ok(_) => OperationState::Succeeded,
                Err(e) => match e.root() {
                    Error::Interrupted { .. } if control.is_aborted() => OperationState::Aborted,
                    Error::Interrupted { .. } => OperationState::Cancelled,
                    Error::Timeout { .. } => OperationState::TimedOut,
                    _ => OperationState::Failed,
                },
            };
            task_shared.snapshot.send_modify(|s| {
                match &result {
                    Ok(t) => t.finish(&mut s.workspaces),
                    Err(e) => {
                        for w in s.workspaces.iter_mut().filter(|w| w.verdict.is_none()) {
                            w.phase = Phase::Done;
                            w.verdict = Some(e.kind().to_string());
                            w.message = Some(e.to_string());
                        }
                    }
                }
                s.state = state;
                s.done = true;
                s.elapsed_ms = ms(task_shared.started.elapsed());
            });
            task_shared.outcome.send_replace(Some(result));
            task_shared.events.close();
        });
        Operation { shared }
    }

    /// The operation's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// What it does.
    pub fn kind(&self) -> OperationKind {
        self.shared.kind
    }

    /// The workspaces it was started on.
    pub fn targets(&self) -> &[String] {
        &self.shared.targets
    }

    /// Where it stands now.
    pub fn snapshot(&self) -> OperationSnapshot {
        let mut s = self.shared.snapshot.borrow().clone();
        if !s.done {
            s.elapsed_ms = ms(self.shared.started.elapsed());
        }
        s
    }

    /// A watch of its snapshot (changes with every event and at the end).
    pub fn watch(&self) -> watch::Receiver<OperationSnapshot> {
        self.shared.snapshot.subscribe()
    }

    /// Its events: the first call gets every event since the start, later calls those from
    /// now on. The events not yet read by every subscriber are held up to
    /// [`EVENT_BUFFER_BYTES`] (and [`EVENT_BUFFER_EVENTS`]): a subscriber that falls further
    /// behind loses the oldest log lines first, then the oldest other events, and is told how
    /// many it lost (`RecvError::Lagged`). The snapshot and the outcome are never lost.
    pub fn events(&self) -> EventReceiver<Ev> {
        let first = self
            .shared
            .first_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        first.unwrap_or_else(|| EventLog::subscribe(&self.shared.events))
    }

    /// Graceful cancel: start nothing new; every stop already under way is followed by its
    /// start. The outcome comes once that is done.
    pub fn cancel(&self) {
        if !self.is_done() {
            self.shared.control.cancel();
            self.shared.snapshot.send_modify(|s| {
                if s.state == OperationState::Running {
                    s.state = OperationState::Cancelling;
                }
            });
        }
    }

    /// Leave everything as it is now; the outcome says exactly what is left.
    pub fn abort(&self) {
        if !self.is_done() {
            self.shared.control.abort();
        }
    }

    /// True once it has ended.
    pub fn is_done(&self) -> bool {
        self.shared.outcome.borrow().is_some()
    }

    /// The outcome, once it has ended.
    pub fn try_outcome(&self) -> Option<Result<T>> {
        self.shared.outcome.borrow().clone()
    }

    /// Waits for the outcome.
    pub async fn outcome(&self) -> Result<T> {
        let mut rx = self.shared.outcome.subscribe();
        loop {
            if let Some(result) = rx.borrow_and_update().clone() {
                return result;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `shared`, which we hold: this does not happen.
                return Err(Error::Interrupted {
                    message: "the operation's task ended without an outcome".into(),
                    last_state: None,
                });
            }
        }
    }

    /// Waits at most `limit` for the outcome; `None` when it is still running.
    pub async fn wait_for(&self, limit: Duration) -> Option<Result<T>> {
        tokio::time::timeout(limit, self.outcome()).await.ok()
    }

    /// Hands every event to `on_event` until the operation ends (its outcome), `limit` passes
    /// or `stop` resolves (`None`: it goes on). Stopping to watch never stops the operation.
    /// When `on_event` is slower than the events come, the oldest log lines are dropped and
    /// `on_event` gets [`OperationEvent::dropped`] with how many.
    pub async fn watch_until(
        &self,
        limit: Option<Duration>,
        stop: impl Future<Output = ()>,
        mut on_event: impl FnMut(Ev),
    ) -> Option<Result<T>> {
        let mut events = self.events();
        let deadline = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline, stop);
        let result = loop {
            tokio::select! {
                biased;
                r = self.outcome() => break Some(r),
                _ = &mut stop => break None,
                _ = &mut deadline => break None,
                e = events.recv() => match e {
                    Ok(e) => on_event(e),
                    Err(RecvError::Lagged(n)) => {
                        if let Some(e) = Ev::dropped(n) {
                            on_event(e);
                        }
                    }
                    Err(RecvError::Closed) => break Some(self.outcome().await),
                },
            }
        };
        loop {
            match events.try_recv() {
                Ok(e) => on_event(e),
                Err(TryRecvError::Lagged(n)) => {
                    if let Some(e) = Ev::dropped(n) {
                        on_event(e);
                    }
                }
                Err(_) => break,
            }
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// The event buffer: bounded in bytes
// ---------------------------------------------------------------------------------------------

/// The most bytes of events an operation holds for subscribers that have not read them yet
/// (each event counted as its size plus its one-line description, which holds a log line's
/// text). With log lines cut to [`crate::coder::LOG_LINE_MAX_BYTES`], that is at least 64 of
/// the longest lines.
pub const EVENT_BUFFER_BYTES: usize = 256 << 10;

/// The most events an operation holds for subscribers that have not read them yet.
pub const EVENT_BUFFER_EVENTS: usize = 1024;

struct Buffered<Ev> {
    seq: u64,
    bytes: usize,
    log_line: bool,
    event: Ev,
}

struct LogState<Ev> {
    /// Events not yet read by every subscriber, in order (`seq` increasing, with gaps where
    /// events were dropped).
    buf: VecDeque<Buffered<Ev>>,
    /// The `seq` of the next event.
    next_seq: u64,
    /// The bytes held in `buf`.
    bytes: usize,
    /// Where each subscriber reads next, by subscriber id.
    cursors: Vec<(u64, u64)>,
    next_reader: u64,
    closed: bool,
}

/// An operation's events for its subscribers: a queue bounded in bytes and in count. Nothing
/// is held when nobody subscribes; what every subscriber has read is freed at once.
struct EventLog<Ev> {
    state: Mutex<LogState<Ev>>,
    notify: Notify,
    max_bytes: usize,
    max_events: usize,
}

impl<Ev> EventLog<Ev> {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState<Ev>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    fn unsubscribe(&self, id: u64) {
        let mut st = self.lock();
        st.cursors.retain(|(r, _)| *r != id);
        let oldest = st.cursors.iter().map(|(_, n)| *n).min().unwrap_or(u64::MAX);
        while st.buf.front().is_some_and(|b| b.seq < oldest) {
            if let Some(b) = st.buf.pop_front() {
                st.bytes -= b.bytes;
            }
        }
        if st.cursors.is_empty() {
            st.buf = VecDeque::new();
        }
    }
}

impl<Ev: OperationEvent> EventLog<Ev> {
    fn new(max_bytes: usize, max_events: usize) -> Arc<Self> {
        Arc::new(EventLog {
            state: Mutex::new(LogState {
                buf: VecDeque::new(),
                next_seq: 0,
                bytes: 0,
                cursors: Vec::new(),
                next_reader: 0,
                closed: false,
            }),
            notify: Notify::new(),
            max_bytes,
            max_events,
        })
    }

    fn reader_at(log: &Arc<Self>, from: impl FnOnce(&LogState<Ev>) -> u64) -> EventReceiver<Ev> {
        let mut st = log.lock();
        let id = st.next_reader;
        st.next_reader += 1;
        let next = from(&st);
        st.cursors.push((id, next));
        EventReceiver {
            log: log.clone(),
            id,
            next,
        }
    }

    /// A subscriber that reads from the first event (made before any was sent).
    fn subscribe_from_start(log: &Arc<Self>) -> EventReceiver<Ev> {
        Self::reader_at(log, |_| 0)
    }

    /// A subscriber that reads the events sent from now on.
    fn subscribe(log: &Arc<Self>) -> EventReceiver<Ev> {
        Self::reader_at(log, |st| st.next_seq)
    }

    fn push(&self, event: Ev, bytes: usize) {
        {
            let mut st = self.lock();
            let seq = st.next_seq;
            st.next_seq += 1;
            if st.cursors.is_empty() {
                return; // nobody reads: nothing to hold
            }
            st.bytes += bytes;
            let log_line = event.is_log_line();
            st.buf.push_back(Buffered {
                seq,
                bytes,
                log_line,
                event,
            });
            while st.buf.len() > 1 && (st.bytes > self.max_bytes || st.buf.len() > self.max_events)
            {
                // The oldest log line goes first; the newest event always stays.
                let last = st.buf.len() - 1;
                let i = st
                    .buf
                    .iter()
                    .take(last)
                    .position(|b| b.log_line)
                    .unwrap_or(0);
                if let Some(b) = st.buf.remove(i) {
                    st.bytes -= b.bytes;
                }
            }
        }
        self.notify.notify_waiters();
    }

    /// The next event for subscriber `id` reading at `*next`.
    fn take(&self, id: u64, next: &mut u64) -> Option<Result<Ev, TryRecvError>> {
        let mut st = self.lock();
        let i = st.buf.partition_point(|b| b.seq < *next);
        let found = st.buf.get(i).map(|b| (b.seq, b.event.clone()));
        let result = match found {
            Some((seq, _)) if seq > *next => {
                let lost = seq - *next;
                *next = seq;
                Some(Err(TryRecvError::Lagged(lost)))
            }
            Some((seq, event)) => {
                *next = seq + 1;
                Some(Ok(event))
            }
            None if *next < st.next_seq => {
                let lost = st.next_seq - *next;
                *next = st.next_seq;
                Some(Err(TryRecvError::Lagged(lost)))
            }
            None if st.closed => Some(Err(TryRecvError::Closed)),
            None => None,
        };
        if let Some(c) = st.cursors.iter_mut().find(|(r, _)| *r == id) {
            c.1 = *next;
        }
        // Free what every subscriber has read.
        let oldest = st.cursors.iter().map(|(_, n)| *n).min().unwrap_or(u64::MAX);
        while st.buf.front().is_some_and(|b| b.seq < oldest) {
            if let Some(b) = st.buf.pop_front() {
                st.bytes -= b.bytes;
            }
        }
        result
    }
}

/// A subscriber to an operation's events ([`Operation::events`]). Dropping it frees what only
/// it had left to read.
pub struct EventReceiver<Ev> {
    log: Arc<EventLog<Ev>>,
    id: u64,
    next: u64,
}

impl<Ev> std::fmt::Debug for EventReceiver<Ev> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReceiver")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<Ev: OperationEvent> EventReceiver<Ev> {
    /// The next event; `Lagged(n)` when `n` events were dropped before it (this subscriber
    /// fell behind), `Closed` once the operation has ended and every event was read.
    pub async fn recv(&mut self) -> Result<Ev, RecvError> {
        loop {
            let notified = self.log.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.log.take(self.id, &mut self.next) {
                Some(Ok(e)) => return Ok(e),
                Some(Err(TryRecvError::Lagged(n))) => return Err(RecvError::Lagged(n)),
                Some(Err(_)) => return Err(RecvError::Closed),
                None => notified.await,
            }
        }
    }

    /// The next event if there is one now (`Empty` otherwise).
    pub fn try_recv(&mut self) -> Result<Ev, TryRecvError> {
        self.log
            .take(self.id, &mut self.next)
            .unwrap_or(Err(TryRecvError::Empty))
    }
}

impl<Ev> Drop for EventReceiver<Ev> {
    fn drop(&mut self) {
        self.log.unsubscribe(self.id);
    }
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// An operation of any kind, as a [`Registry`] holds it: snapshot, outcome as JSON, control.
pub trait AnyOperation: Send + Sync {
    /// The typed operation (downcast to `Operation<Ev, T>` for its typed events and outcome).
    fn as_any(&self) -> &dyn std::any::Any;
    /// The operation's id.
    fn id(&self) -> &str;
    /// What it does.
    fn kind(&self) -> OperationKind;
    /// Its targets.
    fn targets(&self) -> &[String];
    /// Where it stands now.
    fn snapshot(&self) -> OperationSnapshot;
    /// True once it has ended.
    fn is_done(&self) -> bool;
    /// A watch of its snapshot.
    fn watch(&self) -> watch::Receiver<OperationSnapshot>;
    /// The outcome once it ended: the result as JSON, or the error.
    fn outcome_json(&self) -> Option<Result<serde_json::Value>>;
    /// Graceful cancel.
    fn cancel(&self);
    /// Abort.
    fn abort(&self);
}

impl<Ev: OperationEvent, T: OperationOutput + Serialize> AnyOperation for Operation<Ev, T> {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn id(&self) -> &str {
        Operation::id(self)
    }
    fn kind(&self) -> OperationKind {
        Operation::kind(self)
    }
    fn targets(&self) -> &[String] {
        Operation::targets(self)
    }
    fn snapshot(&self) -> OperationSnapshot {
        Operation::snapshot(self)
    }
    fn is_done(&self) -> bool {
        Operation::is_done(self)
    }
    fn watch(&self) -> watch::Receiver<OperationSnapshot> {
        Operation::watch(self)
    }
    fn outcome_json(&self) -> Option<Result<serde_json::Value>> {
        self.try_outcome()
            .map(|r| r.map(|t| serde_json::to_value(&t).unwrap_or(serde_json::Value::Null)))
    }
    fn cancel(&self) {
        Operation::cancel(self)
    }
    fn abort(&self) {
        Operation::abort(self)
    }
}

/// Waits until `op` has ended, at most `limit`; true when it has.
pub async fn wait_until_done(op: &dyn AnyOperation, limit: Duration) -> bool {
    let mut rx = op.watch();
    let done = async {
        loop {
            if rx.borrow_and_update().done {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(limit, done).await.is_ok()
}

/// The limits of a server that runs operations for its callers (fleet-mcp): one place for
/// their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationLimits {
    /// Operations that have not finished, at most: a new one beyond is refused
    /// ([`Registry::reserve`]). Default 256.
    pub max_operations: usize,
    /// Builds in flight at once across every operation (a workspace's stop→start holds one
    /// from its first build to its end); the others wait their turn, shown as `queued`.
    /// Default 64.
    pub max_in_flight_builds: usize,
    /// How long a finished operation is kept (to read its outcome). Default one hour.
    pub keep_finished: Duration,
    /// Finished operations kept at most (the oldest go first). Default 200.
    pub max_finished: usize,
}

impl Default for OperationLimits {
    fn default() -> Self {
        OperationLimits {
            max_operations: 256,
            max_in_flight_builds: 64,
            keep_finished: Duration::from_secs(60 * 60),
            max_finished: 200,
        }
    }
}

/// An operation held by a [`Registry`]: who started it, and when it was seen finished.
struct Entry {
    op: Arc<dyn AnyOperation>,
    /// The caller (a session) it belongs to.
    owner: String,
    finished: Option<Instant>,
}

/// A place for one more unfinished operation in a [`Registry`], taken before the operation is
/// started ([`Registry::reserve`]) and used by [`Registry::insert_reserved`]; dropping it
/// unused gives the place back.
#[derive(Debug)]
pub struct Reservation {
    reserved: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Operations by id: every running one, and finished ones for a while (the memory of one is
/// freed when it is pruned). Each belongs to the caller that started it: [`Registry::list_of`]
/// shows a caller its own; [`Registry::get`] finds any by its exact id, which is a capability
/// (122 random bits).
pub struct Registry {
    entries: Mutex<VecDeque<Entry>>,
    keep_finished: Duration,
    max_finished: usize,
    max_unfinished: usize,
    reserved: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_limits(&OperationLimits::default())
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Keeps a finished operation for `keep_finished`, and at most `max_finished` of them;
    /// unfinished ones are not limited.
    pub fn new(keep_finished: Duration, max_finished: usize) -> Self {
        Registry::with_limits(&OperationLimits {
            keep_finished,
            max_finished,
            max_operations: usize::MAX,
            ..OperationLimits::default()
        })
    }

    /// A registry with these limits (see [`OperationLimits`]).
    pub fn with_limits(limits: &OperationLimits) -> Self {
        Registry {
            entries: Mutex::new(VecDeque::new()),
            keep_finished: limits.keep_finished,
            max_finished: limits.max_finished,
            max_unfinished: limits.max_operations,
            reserved: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for one more unfinished operation, before starting it; refused (nothing
    /// started) when `max_operations` have not finished yet.
    pub fn reserve(&self) -> Result<Reservation> {
        use std::sync::atomic::Ordering;
        let mut entries = self.lock();
        Self::prune(&mut entries, self.keep_finished, self.max_finished);
        let unfinished = entries.iter().filter(|e| e.finished.is_none()).count();
        // Taken under the lock: concurrent callers cannot both take the last place.
        let reserved = self.reserved.load(Ordering::SeqCst);
        if unfinished + reserved >= self.max_unfinished {
            return Err(Error::Refused(format!(
                "{unfinished} operations have not finished yet, the most this server runs at                  once ({}); nothing was started: call again once some have ended, or cancel one",
                self.max_unfinished
            )));
        }
        self.reserved.fetch_add(1, Ordering::SeqCst);
        Ok(Reservation {
            reserved: self.reserved.clone(),
        })
    }

    /// Adds an operation (belonging to nobody in particular), without a reservation.
    pub fn insert(&self, op: Arc<dyn AnyOperation>) {
        self.push(op, String::new());
    }

    /// Adds an operation started with `reservation`, belonging to `owner` (a session).
    pub fn insert_reserved(
        &self,
        reservation: Reservation,
        owner: &str,
        op: Arc<dyn AnyOperation>,
    ) {
        self.push(op, owner.to_string());
        drop(reservation);
    }

    fn push(&self, op: Arc<dyn AnyOperation>, owner: String) {
        let mut entries = self.lock();
        Self::prune(&mut entries, self.keep_finished, self.max_finished);
        entries.push_back(Entry {
            op,
            owner,
            finished: None,
        });
    }

    fn prune(entries: &mut VecDeque<Entry>, keep: Duration, max: usize) {
        let now = Instant::now();
        for e in entries.iter_mut() {
            if e.finished.is_none() && e.op.is_done() {
                e.finished = Some(now);
            }
        }
        entries.retain(|e| e.finished.is_none_or(|at| now.duration_since(at) < keep));
        let mut finished = entries.iter().filter(|e| e.finished.is_some()).count();
        while finished > max {
            if let Some(i) = entries.iter().position(|e| e.finished.is_some()) {
                entries.remove(i);
            }
            finished -= 1;
        }
    }

    /// The operation with this exact id, whoever started it.
    pub fn get(&self, id: &str) -> Option<Arc<dyn AnyOperation>> {
        let id = id.trim();
        self.lock()
            .iter()
            .find(|e| e.op.id() == id)
            .map(|e| e.op.clone())
    }

    /// A running operation of this kind on exactly these targets (to follow it instead of
    /// starting a second one).
    pub fn running(
        &self,
        kind: OperationKind,
        targets: &[String],
    ) -> Option<Arc<dyn AnyOperation>> {
        self.lock()
            .iter()
            .find(|e| e.op.kind() == kind && e.op.targets() == targets && !e.op.is_done())
            .map(|e| e.op.clone())
    }

    /// A running operation of `owner`'s, of this kind on exactly these targets.
    pub fn running_of(
        &self,
        owner: &str,
        kind: OperationKind,
        targets: &[String],
    ) -> Option<Arc<dyn AnyOperation>> {
        self.lock()
            .iter()
            .find(|e| {
                e.owner == owner
                    && e.op.kind() == kind
                    && e.op.targets() == targets
                    && !e.op.is_done()
            })
            .map(|e| e.op.clone())
    }

    /// Every operation held, oldest first.
    pub fn list(&self) -> Vec<Arc<dyn AnyOperation>> {
        let mut entries = self.lock();
        Self::prune(&mut entries, self.keep_finished, self.max_finished);
        entries.iter().map(|e| e.op.clone()).collect()
    }

    /// The operations `owner` started, oldest first.
    pub fn list_of(&self, owner: &str) -> Vec<Arc<dyn AnyOperation>> {
        let mut entries = self.lock();
        Self::prune(&mut entries, self.keep_finished, self.max_finished);
        entries
            .iter()
            .filter(|e| e.owner == owner)
            .map(|e| e.op.clone())
            .collect()
    }

    /// The operations still running.
    pub fn in_flight(&self) -> Vec<Arc<dyn AnyOperation>> {
        self.lock()
            .iter()
            .filter(|e| !e.op.is_done())
            .map(|e| e.op.clone())
            .collect()
    }

    /// Shutting down: cancels every running operation gracefully (each stop under way is
    /// followed by its start), waits at most `limit` for them, then aborts what is left and
    /// returns the snapshots of the operations that did not end in time (after the abort).
    pub async fn drain(&self, limit: Duration) -> Vec<OperationSnapshot> {
        let running = self.in_flight();
        for op in &running {
            op.cancel();
        }
        let deadline = Instant::now() + limit;
        let mut left = Vec::new();
        for op in &running {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !wait_until_done(op.as_ref(), remaining).await {
                left.push(op.clone());
            }
        }
        for op in &left {
            op.abort();
        }
        let mut snapshots = Vec::new();
        for op in &left {
            wait_until_done(op.as_ref(), Duration::from_secs(2)).await;
            snapshots.push(op.snapshot());
        }
        snapshots
    }
}
