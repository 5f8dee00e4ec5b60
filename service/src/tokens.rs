//! Scoped access tokens: created, listed and revoked by the admin only.

use std::collections::BTreeSet;

use aether_core::TokenRecord;

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Principal, session_id};

#[derive(Clone, Debug, Default)]
pub struct CreateToken {
    pub sessions: Vec<String>,
    /// `read` or `write`.
    pub access: String,
    pub description: String,
}

impl Service {
    /// A new token and its secret (shown this once).
    pub async fn create_token(&self, p: &Principal, req: CreateToken) -> Result<(TokenRecord, String)> {
        p.require_admin()?;
        let access = aether_core::Access::parse(&req.access)
            .ok_or_else(|| ServiceError::invalid(format!("access must be read or write, got '{}'", req.access)))?;
        let sessions = req
            .sessions
            .iter()
            .map(|s| session_id(s))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok(self
            .engine_for(p)
            .create_token(sessions, access, req.description)
            .await?)
    }

    pub async fn list_tokens(&self, p: &Principal) -> Result<Vec<TokenRecord>> {
        p.require_admin()?;
        Ok(self.engine_for(p).list_tokens().await?)
    }

    pub async fn revoke_token(&self, p: &Principal, token_id: &str) -> Result<()> {
        p.require_admin()?;
        Ok(self.engine_for(p).revoke_token(token_id).await?)
    }
}
