//! Following a long operation: every long command on both planes (single, batch, dry run)
//! starts an SDK [`Operation`] and hands it to [`follow`] with a renderer. One Ctrl-C policy,
//! Terraform's two stages:
//!
//! 1. the first Ctrl-C cancels gracefully: nothing new starts, what is in flight is finished
//!    (a stop under way is followed by its start; a migration's start under way gets its
//!    answer, and following stops while the control plane goes on), and says so;
//! 2. the second leaves everything as it is at once; the outcome says what is left and the
//!    command that finishes or follows it (exit 130).

use fleet::operation::{Operation, OperationEvent, OperationKind, OperationOutput};

use fleet::text::escape_one_line;

use crate::out;

/// Draws an operation's events (stderr): one target, or many.
pub trait Render<Ev> {
    /// One event, as it comes.
    fn event(&mut self, event: Ev);
    /// The operation ended: clears or settles what is drawn.
    fn finish(&mut self);
}

/// Draws `op`'s events with `renderer` until it ends, with the one Ctrl-C policy; returns its
/// outcome.
pub async fn follow<Ev, T>(
    op: &Operation<Ev, T>,
    renderer: &mut impl Render<Ev>,
) -> fleet::Result<T>
where
    Ev: OperationEvent,
    T: OperationOutput,
{
    // Listening before anything is drawn: a Ctrl-C that follows the first line is ours.
    let listener = CtrlC::listen();
    let interrupts = tokio::spawn(interrupts(op.clone(), listener));
    let result = match op
        .watch_until(None, std::future::pending(), |e| renderer.event(e))
        .await
    {
        Some(result) => result,
        None => op.outcome().await,
    };
    interrupts.abort();
    renderer.finish();
    result
}

/// Ctrl-C, listened for from the moment it is created.
struct CtrlC {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl CtrlC {
    fn listen() -> Self {
        CtrlC {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// True when Ctrl-C was pressed; false when it cannot be listened for.
    async fn pressed(&mut self) -> bool {
        #[cfg(unix)]
        {
            match &mut self.signal {
                Some(s) => s.recv().await.is_some(),
                None => false,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

/// The first Ctrl-C cancels gracefully and says what is finished; the second aborts.
async fn interrupts<Ev: OperationEvent, T: OperationOutput>(
    op: Operation<Ev, T>,
    mut ctrl_c: CtrlC,
) {
    if !ctrl_c.pressed().await {
        return;
    }
    out::err(first_interrupt(&op));
    op.cancel();
    if !ctrl_c.pressed().await {
        return;
    }
    out::err("Second interrupt: leaving everything as it is now");
    op.abort();
}

/// What the first Ctrl-C does to this operation, in one line.
fn first_interrupt<Ev: OperationEvent, T: OperationOutput>(op: &Operation<Ev, T>) -> String {
    let snapshot = op.snapshot();
    let mut said = String::from("Interrupt received: ");
    match op.kind() {
        OperationKind::Update | OperationKind::Restart | OperationKind::BatchUpdate => {
            let in_flight: Vec<String> = snapshot
                .workspaces
                .iter()
                .filter(|w| w.phase.is_mid_restart())
                .map(|w| w.target.clone())
                .collect();
            if op.kind() == OperationKind::BatchUpdate {
                said.push_str("starting no more workspaces; ");
            }
            if in_flight.is_empty() {
                said.push_str("nothing is stopped yet, so nothing will be; ");
            } else {
                said.push_str(&format!(
                    "finishing the in-flight stop→start of {}; ",
                    escape_one_line(&in_flight.join(", "))
                ));
            }
            said.push_str(if in_flight.len() > 1 {
                "Ctrl-C again to leave them as they are"
            } else {
                "Ctrl-C again to leave it as it is"
            });
        }
        OperationKind::Migrate if snapshot.events == 0 => said.push_str(
            "letting the start under way get its answer, then following no more (the \
             migration goes on on the control plane); Ctrl-C again to leave at once",
        ),
        OperationKind::Migrate | OperationKind::FollowMigration => {
            said.push_str("following no more (the migration goes on on the control plane)")
        }
        OperationKind::MigrationRollout => said.push_str(
            "starting no more migrations (those started go on); a start under way gets its \
             answer; Ctrl-C again to leave at once",
        ),
        OperationKind::FollowMigrations => {
            said.push_str("following no more (the migrations go on on the control plane)")
        }
        OperationKind::Promote | OperationKind::Rollback => {
            let in_flight = snapshot
                .workspaces
                .iter()
                .filter(|w| w.phase.is_mid_restart())
                .count();
            said.push_str(if op.kind() == OperationKind::Promote {
                "promoting nothing if not yet promoted, starting no more workspaces; "
            } else {
                "starting no more workspaces; "
            });
            said.push_str(&format!(
                "finishing the {in_flight} stop→start(s) in flight; Ctrl-C again to leave them as \
                 they are"
            ));
        }
        OperationKind::DryRun | OperationKind::Readiness => {
            said.push_str("stopping (it only reads: there is nothing to finish)")
        }
    }
    said
}
