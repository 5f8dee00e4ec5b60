//! `aether.v1.TokenService` (admin only) and `aether.v1.MetaService`.

use tonic::{Request, Response};

use aether_proto::v1 as pb;
use aether_proto::v1::meta_service_server::MetaService;
use aether_proto::v1::token_service_server::TokenService;
use aether_service::{CreateToken, Identity};

use super::status::{GrpcResult, status};
use super::{Api, convert};

#[tonic::async_trait]
impl TokenService for Api {
    async fn create_token(&self, req: Request<pb::CreateTokenRequest>) -> GrpcResult<pb::Token> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let create = CreateToken {
            sessions: r.sessions,
            access: r.access,
            description: r.description,
        };
        let (record, secret) = self.service().create_token(&caller, create).await.map_err(status)?;
        let mut token = convert::token(record);
        token.token = Some(secret);
        Ok(Response::new(token))
    }

    async fn list_tokens(&self, req: Request<pb::Empty>) -> GrpcResult<pb::ListTokensResponse> {
        let caller = self.caller(&req).await?;
        let tokens = self.service().list_tokens(&caller).await.map_err(status)?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(convert::token).collect(),
        }))
    }

    async fn revoke_token(&self, req: Request<pb::RevokeTokenRequest>) -> GrpcResult<pb::Empty> {
        let caller = self.caller(&req).await?;
        self.service()
            .revoke_token(&caller, &req.get_ref().id)
            .await
            .map_err(status)?;
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
        Ok(Response::new(match self.caller(&req).await?.identity {
            Identity::Admin => pb::Principal {
                admin: true,
                token: None,
            },
            Identity::Scoped(t) => pb::Principal {
                admin: false,
                token: Some(convert::token((*t).clone())),
            },
        }))
    }
}
