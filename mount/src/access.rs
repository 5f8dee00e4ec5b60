//! Whether the mount may change its session, decided once at start: asked read-only (`--ro`),
//! a revision (`--at`), an archived session, or a token that may only read the session. The server says who the
//! token is (`MetaService.WhoAmI`); a mount whose token cannot write is made read-only, so every
//! change fails at once with `EROFS` instead of being accepted locally and refused later. This
//! module only decides; `serve` applies the decision and the caller reports it.

use aether_proto::remote::Remote;
use aether_proto::v1 as pb;

use crate::error::{MountError, Result};

/// Why a mount is read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOnly {
    /// Asked for (`--ro`).
    Asked,
    /// A checkpoint, branch or commit: it never changes.
    Revision,
    /// The token may only read the session (its id; the secret is never shown).
    Token { id: String },
    /// The session is archived: the server takes no more changes to it.
    Archived,
}

impl std::fmt::Display for ReadOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadOnly::Asked => write!(f, "read-only as asked (--ro)"),
            ReadOnly::Revision => write!(f, "read-only: a revision never changes"),
            ReadOnly::Token { id } => write!(
                f,
                "read-only: token {id} may only read this session; every change fails with EROFS"
            ),
            ReadOnly::Archived => write!(f, "read-only: the session is archived; every change fails with EROFS"),
        }
    }
}

/// Whether the token `who` (the server's `WhoAmI` answer) may change the session `session`
/// (its id): the admin and a write token naming it may. `Some(ReadOnly::Token)` otherwise.
pub fn of_principal(who: &pb::Principal, session: &str) -> Option<ReadOnly> {
    if who.admin {
        return None;
    }
    match &who.token {
        Some(t) if t.access == "write" && t.sessions.iter().any(|s| s == session) => None,
        Some(t) => Some(ReadOnly::Token { id: t.id.clone() }),
        // Neither the admin nor a token: nothing says it may write.
        None => Some(ReadOnly::Token { id: "(unknown)".into() }),
    }
}

/// Why a mount of `session` (as `GetSession` answered) asked read-only or not must be
/// read-only, asking the server what the token may do only when that is what decides.
pub async fn decide(remote: &Remote, session: &pb::Session, asked: bool, at: Option<&str>) -> Result<Option<ReadOnly>> {
    Ok(if at.is_some() {
        Some(ReadOnly::Revision)
    } else if asked {
        Some(ReadOnly::Asked)
    } else if session.state == "archived" {
        Some(ReadOnly::Archived)
    } else {
        of_token(remote, &session.id).await?
    })
}

/// Ask the server whether the mount's token may change `session` (its id). A server without
/// `WhoAmI` leaves the mount writable: the server still refuses what the token may not do, and
/// each refusal fails the `fsync` or `close` that waits for it (see `refused`).
pub async fn of_token(remote: &Remote, session: &str) -> Result<Option<ReadOnly>> {
    match remote.meta().who_am_i(pb::Empty {}).await {
        Ok(who) => Ok(of_principal(&who.into_inner(), session)),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            tracing::warn!("the server cannot say what the token may do; mounting read-write");
            Ok(None)
        }
        Err(s) => Err(MountError::Server(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(access: &str, sessions: &[&str]) -> pb::Principal {
        pb::Principal {
            admin: false,
            token: Some(pb::Token {
                id: "tok_1".into(),
                sessions: sessions.iter().map(|s| (*s).to_owned()).collect(),
                access: access.into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn only_the_admin_and_a_write_token_for_the_session_mount_read_write() {
        let admin = pb::Principal {
            admin: true,
            token: None,
        };
        assert_eq!(of_principal(&admin, "s1"), None);
        assert_eq!(of_principal(&token("write", &["s0", "s1"]), "s1"), None);
        let token_ro = ReadOnly::Token { id: "tok_1".into() };
        let read_only = Some(token_ro.clone());
        assert_eq!(of_principal(&token("read", &["s1"]), "s1"), read_only);
        // Write access to other sessions only.
        assert_eq!(of_principal(&token("write", &["s2"]), "s1"), read_only);
        assert_eq!(of_principal(&token("admin?", &["s1"]), "s1"), read_only);
        let said = token_ro.to_string();
        assert!(said.contains("tok_1") && said.contains("EROFS"), "{said}");
    }
}
