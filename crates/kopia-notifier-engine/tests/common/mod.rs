//! What every engine test file waits with.

use std::time::Duration;

use kopia_notifier_engine::EngineEvent;
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout, Instant};

/// Waits for an event matching `want`, returning it; fails after `limit`.
pub async fn wait_event(
    events: &mut Receiver<EngineEvent>,
    limit: Duration,
    mut want: impl FnMut(&EngineEvent) -> bool,
) -> EngineEvent {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Ok(Some(event)) if want(&event) => return event,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream closed"),
            Err(_) => panic!("no matching event within {limit:?}"),
        }
    }
}
