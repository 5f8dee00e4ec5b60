//! Change notification: a signal that a session may have new events, so a watcher wakes up
//! and reads the events table from its cursor instead of polling on a timer. The events table
//! stays the source of truth (a signal carries no event); a watcher that falls behind is told
//! to re-read, never loses an event. Knows no transport.

use tokio::sync::broadcast;

use crate::engine::Engine;
use crate::ids::SessionId;

/// A subscription to one session's changes; see [`Engine::watch`].
pub struct SessionWatch {
    id: SessionId,
    rx: broadcast::Receiver<SessionId>,
}

impl SessionWatch {
    /// Wait until the session may have changed since the last call (or since the watch was
    /// made). Returns `false` once the engine is gone and nothing more will ever change.
    pub async fn changed(&mut self) -> bool {
        loop {
            match self.rx.recv().await {
                Ok(id) if id == self.id => return true,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
    }
}

impl Engine {
    /// Watch a session: subscribe first, then read [`Engine::events`] from a cursor, then wait
    /// on [`SessionWatch::changed`] and read again; no event can slip between the two.
    pub fn watch(&self, id: &SessionId) -> SessionWatch {
        SessionWatch {
            id: id.clone(),
            rx: self.inner.changes.tx.subscribe(),
        }
    }

    /// A cursor for [`Engine::events`] that skips every event the session has so far: a watcher
    /// that only cares about changes from now on (a new mount) starts here instead of at 0.
    /// Take it after [`Engine::watch`] so nothing slips between the two.
    pub async fn event_cursor(&self, id: &SessionId) -> crate::Result<i64> {
        if !self.inner.imports.contains(id) {
            self.handle(id).await?;
        }
        self.inner.meta.events.last_event_seq(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_wakes_for_its_session_only_and_on_lag() {
        let changes = crate::changes::Changes::new();
        let a: SessionId = SessionId::generate();
        let b: SessionId = SessionId::generate();
        let mut w = SessionWatch {
            id: a.clone(),
            rx: changes.tx.subscribe(),
        };
        changes.notify(&b);
        changes.notify(&a);
        assert!(w.changed().await);
        // Only b's signal remains unread: the watch must not wake for it.
        changes.notify(&b);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(50), w.changed()).await;
        assert!(timed_out.is_err(), "woke for another session");
        for _ in 0..crate::changes::BACKLOG + 10 {
            changes.notify(&b);
        }
        assert!(w.changed().await, "a lagging watcher must be told to re-read");
        drop(changes);
        // What is still buffered is b's; then the closed channel ends the watch.
        assert!(!w.changed().await, "a watch ends when the engine is gone");
    }

    #[tokio::test]
    async fn event_cursor_skips_the_history_so_far() {
        use crate::{CreateOptions, EngineConfig, SessionSource, WriteOptions};
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).await.unwrap();
        let id = engine
            .create_session(SessionSource::Empty, CreateOptions::default())
            .await
            .unwrap()
            .id;
        engine
            .write_bytes(&id, "old.txt", b"old".to_vec(), WriteOptions::default())
            .await
            .unwrap();
        let cursor = engine.event_cursor(&id).await.unwrap();
        assert!(cursor > 0);
        assert!(engine.events(&id, cursor, 10).await.unwrap().is_empty());
        engine
            .write_bytes(&id, "new.txt", b"new".to_vec(), WriteOptions::default())
            .await
            .unwrap();
        let after = engine.events(&id, cursor, 10).await.unwrap();
        let paths: Vec<_> = after.iter().map(|e| e.path.as_deref()).collect();
        assert_eq!(paths, [Some("new.txt")]);
        let missing = SessionId::generate();
        assert!(engine.event_cursor(&missing).await.is_err());
    }
}
