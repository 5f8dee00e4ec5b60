//! Scoped access tokens (admin only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use aether_service::CreateToken;

use super::ApiJson;
use crate::auth::Admin;
use crate::dto;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Create a token for a set of sessions with read or write access. The secret is in this
/// response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = dto::CreateToken,
    responses((status = 201, body = dto::Token), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(req): ApiJson<dto::CreateToken>,
) -> ApiResult<(StatusCode, Json<dto::Token>)> {
    let req = CreateToken {
        sessions: req.sessions,
        access: req.access,
        description: req.description,
    };
    let (record, secret) = state.service.create_token(&caller, req).await?;
    let mut token = dto::Token::from(record);
    token.token = Some(secret);
    Ok((StatusCode::CREATED, Json(token)))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", responses((status = 200, body = dto::TokenList), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Admin(caller): Admin) -> ApiResult<Json<dto::TokenList>> {
    let tokens = state.service.list_tokens(&caller).await?;
    Ok(Json(dto::TokenList {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/tokens/{token_id}", tag = "tokens", params(dto::TokenPath),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.service.revoke_token(&caller, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
