//! Who calls: the admin (the token in `<data-dir>/admin.token`, may do anything) or a scoped
//! token (reads, or reads and writes, the sessions it names). Authentication (a secret to a
//! [`Principal`]) and every access decision are made here; surfaces only find the secret in
//! their own framing (a bearer header, HTTP basic auth, gRPC metadata).

use std::sync::Arc;

use aether_core::{SessionId, TokenRecord};

use crate::Service;
use crate::error::{Result, ServiceError};

#[derive(Clone, Debug)]
pub enum Principal {
    Admin,
    Scoped(Arc<TokenRecord>),
}

/// What an operation does to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }

    /// The admin, or `forbidden`.
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Scoped(_) => Err(ServiceError::forbidden("this operation needs the admin token")),
        }
    }

    /// Access to one session, or `forbidden` saying what the token lacks.
    pub fn require(&self, id: &SessionId, access: Access) -> Result<()> {
        let write = access == Access::Write;
        match self {
            Principal::Admin => Ok(()),
            Principal::Scoped(t) if t.allows(id, write) => Ok(()),
            Principal::Scoped(t) if t.allows(id, false) => Err(ServiceError::forbidden(format!(
                "token {} may only read session {id}",
                t.id
            ))),
            Principal::Scoped(t) => Err(ServiceError::forbidden(format!(
                "token {} has no access to session {id}",
                t.id
            ))),
        }
    }

    /// Whether the session shows up in this caller's listings.
    pub fn sees(&self, id: &SessionId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Scoped(t) => t.allows(id, false),
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
    /// The caller presenting `secret` (`None`: the request carried no credentials).
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<Principal> {
        let secret = secret.ok_or_else(|| ServiceError::unauthorized("missing bearer token"))?;
        if constant_time_eq(secret.as_bytes(), self.inner.admin_token.as_bytes()) {
            return Ok(Principal::Admin);
        }
        match self.engine().verify_token(secret).await? {
            Some(t) => Ok(Principal::Scoped(Arc::new(t))),
            None => Err(ServiceError::unauthorized("invalid token")),
        }
    }

    /// The session `raw` names, if `p` may access it so.
    pub(crate) fn session(&self, p: &Principal, raw: &str, access: Access) -> Result<SessionId> {
        let id = session_id(raw)?;
        p.require(&id, access)?;
        Ok(id)
    }
}
