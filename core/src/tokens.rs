//! Access tokens scoped to sessions. Only a token's blake3 hash is stored; the secret is shown
//! once, at creation. Transports decide what a scope allows; the engine only keeps the records.

use std::collections::BTreeSet;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::{SessionId, now_millis, random_suffix};
pub use crate::meta::{Access, TokenRecord};

/// A fresh random secret: `aet_` and 256 bits in hex.
pub fn new_secret() -> String {
    format!(
        "aet_{}{}{}{}",
        random_suffix(),
        random_suffix(),
        random_suffix(),
        random_suffix()
    )
}

pub fn hash_secret(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

impl Engine {
    /// Create a token for `sessions` (which must exist); returns the record and the secret.
    pub async fn create_token(
        &self,
        sessions: BTreeSet<SessionId>,
        access: Access,
        description: String,
    ) -> Result<(TokenRecord, String)> {
        if sessions.is_empty() || sessions.len() > 1000 {
            return Err(Error::InvalidArgument("a token is scoped to 1 to 1000 sessions".into()));
        }
        if description.len() > 256 {
            return Err(Error::InvalidArgument(
                "a token description is at most 256 bytes".into(),
            ));
        }
        for id in &sessions {
            self.get_session(id).await?;
        }
        let secret = format!(
            "aet_{}{}{}{}",
            random_suffix(),
            random_suffix(),
            random_suffix(),
            random_suffix()
        );
        let record = TokenRecord {
            id: format!("tok_{}", random_suffix()),
            sessions,
            access,
            description,
            created_at: now_millis(),
            hash: hash_secret(&secret),
        };
        self.inner.meta.tokens.insert_token(&record).await?;
        Ok((record, secret))
    }

    /// The token whose secret this is, if any.
    pub async fn verify_token(&self, secret: &str) -> Result<Option<TokenRecord>> {
        if !secret.starts_with("aet_") || secret.len() > 128 {
            return Ok(None);
        }
        self.inner.meta.tokens.find_token(&hash_secret(secret)).await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.inner.meta.tokens.list_tokens().await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.inner.meta.tokens.delete_token(id).await
    }
}
