//! The engine-wide "session X may have new events" signal behind `watch`: a broadcast that
//! carries no event (the events table stays the source of truth). Knows no engine and no store.

use tokio::sync::broadcast;

use crate::ids::SessionId;

/// How many signals a slow watcher may fall behind before it is told to re-read.
pub(crate) const BACKLOG: usize = 1024;

/// The engine-wide sender of "session X changed" signals.
pub(crate) struct Changes {
    pub(crate) tx: broadcast::Sender<SessionId>,
}

impl Changes {
    pub(crate) fn new() -> Self {
        Changes {
            tx: broadcast::channel(BACKLOG).0,
        }
    }

    /// Signal that `id` has new events (or was deleted). Nobody listening is fine.
    pub(crate) fn notify(&self, id: &SessionId) {
        let _ = self.tx.send(id.clone());
    }
}
