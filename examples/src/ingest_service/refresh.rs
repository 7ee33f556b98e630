//! The loop that keeps silver and gold fresh.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use lake::{Result, error_lines};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::State;

/// Refreshes every interval, and when a batch lands if the configuration
/// says so, until `stop` turns true; a refresh under way then finishes,
/// and one more runs if a batch landed since the last one started.
pub(super) async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) -> Result<()> {
    let every = Duration::from_secs_f64(state.config.refresh_interval_seconds);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ticks.tick() => {}
            _ = state.landed.notified(), if state.config.refresh_after_batch => {}
        }
        if *stop.borrow() {
            break;
        }
        refresh(&state).await;
    }
    if state.unrefined.load(Ordering::SeqCst) {
        refresh(&state).await;
    }
    Ok(())
}

/// One `run_pending`; a failure is counted and logged, and the next tick
/// tries again (bookmarks make a retry exactly-once).
async fn refresh(state: &State) {
    state.unrefined.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let result = state.pipeline.run_pending().await;
    state.metrics.refresh(result.is_ok(), started.elapsed());
    match result {
        Ok(report) => tracing::debug!(run = %report.run_id, "refreshed silver and gold"),
        Err(e) => {
            // The batches stay in bronze: the next refresh takes them.
            state.unrefined.store(true, Ordering::SeqCst);
            tracing::warn!(error = %error_lines(&e).join(": "), "refresh failed");
        }
    }
}
