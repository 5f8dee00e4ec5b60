//! Who calls, and through what: the admin (the token in `<data-dir>/admin.token`, may do
//! anything) or a scoped token (reads, or reads and writes, the sessions it names), on one
//! surface, perhaps from a mount. Authentication (a secret to a [`Principal`]) and every access
//! decision are made here; surfaces only find the secret in their own framing (a bearer header,
//! HTTP basic auth, gRPC metadata). Every change a principal makes is recorded with its
//! [`Origin`], so a mount knows its own changes when they come back on the watch stream.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;

use aether_core::event::check_mount_id;
use aether_core::{Engine, Origin, SessionId, Surface, TokenRecord};

use crate::Service;
use crate::error::{Result, ServiceError};

/// Whose credentials a request carries.
#[derive(Clone, Debug)]
pub enum Identity {
    Admin,
    Scoped(Arc<TokenRecord>),
}

/// The caller of one request: who, through which surface, from which mount. Clones share the
/// request's [`Principal::incomplete_handoffs`].
#[derive(Clone, Debug)]
pub struct Principal {
    pub identity: Identity,
    pub surface: Surface,
    /// The id a mount gave itself (the surface is then [`Surface::Mount`]).
    pub mount: Option<String>,
    /// Mounts whose changes this request went on without (see `handoff`): the surface tells
    /// the caller (a response header or metadata entry).
    incomplete: Arc<Mutex<BTreeSet<String>>>,
}

/// What an operation does to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Principal {
    /// The admin, calling through `surface`.
    pub fn admin(surface: Surface) -> Principal {
        Principal::new(Identity::Admin, surface)
    }

    fn new(identity: Identity, surface: Surface) -> Principal {
        Principal {
            identity,
            surface,
            mount: None,
            incomplete: Arc::default(),
        }
    }

    /// The mounts whose changes this request went on without, because they did not hand
    /// them over in time (empty when every read and freeze of the request was exact).
    pub fn incomplete_handoffs(&self) -> Vec<String> {
        self.incomplete.lock().iter().cloned().collect()
    }

    pub(crate) fn note_incomplete(&self, mounts: &[String]) {
        self.incomplete.lock().extend(mounts.iter().cloned());
    }

    /// This caller, as the mount `id` (sent by the mount with each request). A malformed id is
    /// `invalid_argument`.
    pub fn from_mount(self, id: &str) -> Result<Principal> {
        check_mount_id(id).map_err(ServiceError::invalid)?;
        Ok(Principal {
            surface: Surface::Mount,
            mount: Some(id.to_owned()),
            ..self
        })
    }

    /// Where this caller's changes are recorded as coming from.
    pub fn origin(&self) -> Origin {
        let principal = match &self.identity {
            Identity::Admin => "admin".to_owned(),
            Identity::Scoped(t) => format!("token:{}", t.id),
        };
        Origin {
            surface: self.surface,
            principal,
            mount: self.mount.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.identity, Identity::Admin)
    }

    /// The admin, or `forbidden`.
    pub fn require_admin(&self) -> Result<()> {
        match self.identity {
            Identity::Admin => Ok(()),
            Identity::Scoped(_) => Err(ServiceError::forbidden("this operation needs the admin token")),
        }
    }

    /// Access to one session, or `forbidden` saying what the token lacks.
    pub fn require(&self, id: &SessionId, access: Access) -> Result<()> {
        let write = access == Access::Write;
        match &self.identity {
            Identity::Admin => Ok(()),
            Identity::Scoped(t) if t.allows(id, write) => Ok(()),
            Identity::Scoped(t) if t.allows(id, false) => Err(ServiceError::forbidden(format!(
                "token {} may only read session {id}",
                t.id
            ))),
            Identity::Scoped(t) => Err(ServiceError::forbidden(format!(
                "token {} has no access to session {id}",
                t.id
            ))),
        }
    }

    /// Whether the session shows up in this caller's listings.
    pub fn sees(&self, id: &SessionId) -> bool {
        match &self.identity {
            Identity::Admin => true,
            Identity::Scoped(t) => t.allows(id, false),
        }
    }
}

/// Byte comparison whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A session id from a request: malformed ids name no session (`not_found`).
pub fn session_id(raw: &str) -> Result<SessionId> {
    raw.parse().map_err(ServiceError::from)
}

impl Service {
    /// The caller presenting `secret` (`None`: the request carried no credentials) on
    /// `surface`.
    pub async fn authenticate(&self, secret: Option<&str>, surface: Surface) -> Result<Principal> {
        let secret = secret.ok_or_else(|| ServiceError::unauthorized("missing bearer token"))?;
        let identity = if constant_time_eq(secret.as_bytes(), self.inner.admin_token.as_bytes()) {
            Identity::Admin
        } else {
            match self.engine().verify_token(secret).await? {
                Some(t) => Identity::Scoped(Arc::new(t)),
                None => return Err(ServiceError::unauthorized("invalid token")),
            }
        };
        let p = Principal::new(identity, surface);
        self.count_request(&p)?;
        Ok(p)
    }

    /// The engine, recording changes as made by `p`.
    pub(crate) fn engine_for(&self, p: &Principal) -> Engine {
        self.engine().acting_for(p.origin())
    }

    /// The session `raw` names, if `p` may access it so.
    pub(crate) fn session(&self, p: &Principal, raw: &str, access: Access) -> Result<SessionId> {
        let id = session_id(raw)?;
        p.require(&id, access)?;
        Ok(id)
    }
}
