//! Session ids reserved by git imports still running (see `import_git`): their progress events
//! exist before their sessions do. Knows no engine and no store.

use std::collections::HashSet;

use parking_lot::Mutex;

use crate::ids::SessionId;

/// Session ids reserved by imports that are still running.
#[derive(Default)]
pub(crate) struct PendingImports(pub(crate) Mutex<HashSet<SessionId>>);

impl PendingImports {
    pub(crate) fn contains(&self, id: &SessionId) -> bool {
        self.0.lock().contains(id)
    }
}
