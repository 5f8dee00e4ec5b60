//! `aether.v1.TokenService` (admin only) and `aether.v1.MetaService`.

use std::collections::BTreeSet;

use tonic::{Request, Response};

use aether_core::Access;
use aether_proto::v1 as pb;
use aether_proto::v1::meta_service_server::MetaService;
use aether_proto::v1::token_service_server::TokenService;

use super::status::{GrpcResult, from_core, invalid};
use super::{Api, convert, session_id};
use crate::auth::Principal;

#[tonic::async_trait]
impl TokenService for Api {
    async fn create_token(&self, req: Request<pb::CreateTokenRequest>) -> GrpcResult<pb::Token> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let access = Access::parse(&r.access)
            .ok_or_else(|| invalid(format!("access must be read or write, got '{}'", r.access)))?;
        let sessions = r
            .sessions
            .iter()
            .map(|s| session_id(s))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let (record, secret) = self
            .state
            .engine
            .create_token(sessions, access, r.description)
            .await
            .map_err(from_core)?;
        let mut token = convert::token(record);
        token.token = Some(secret);
        Ok(Response::new(token))
    }

    async fn list_tokens(&self, req: Request<pb::Empty>) -> GrpcResult<pb::ListTokensResponse> {
        self.admin(&req).await?;
        let tokens = self.state.engine.list_tokens().await.map_err(from_core)?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(convert::token).collect(),
        }))
    }

    async fn revoke_token(&self, req: Request<pb::RevokeTokenRequest>) -> GrpcResult<pb::Empty> {
        self.admin(&req).await?;
        let id = req.into_inner().id;
        self.state.engine.revoke_token(&id).await.map_err(from_core)?;
        Ok(Response::new(pb::Empty {}))
    }
}

#[tonic::async_trait]
impl MetaService for Api {
    async fn get_info(&self, _req: Request<pb::Empty>) -> GrpcResult<pb::ServerInfo> {
        Ok(Response::new(pb::ServerInfo {
            name: "aetherd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn who_am_i(&self, req: Request<pb::Empty>) -> GrpcResult<pb::Principal> {
        Ok(Response::new(match self.caller(&req).await? {
            Principal::Admin => pb::Principal {
                admin: true,
                token: None,
            },
            Principal::Scoped(t) => pb::Principal {
                admin: false,
                token: Some(convert::token((*t).clone())),
            },
        }))
    }
}
