//! `aether token ...` (admin).

use aether_proto::v1 as pb;

use crate::Out;
use crate::args::TokenCmd;
use crate::client::Client;
use crate::error::Result;
use crate::output::{self, print_json};

pub async fn run(c: &Client, cmd: TokenCmd, out: Out) -> Result<()> {
    match cmd {
        TokenCmd::Create(a) => {
            let t = c
                .tokens()
                .create_token(pb::CreateTokenRequest {
                    sessions: a.sessions,
                    access: a.access,
                    description: a.description,
                })
                .await
                .map_err(|s| c.err(s))?
                .into_inner();
            if out.json {
                print_json(&output::token_json(&t));
            } else {
                outln!(
                    "{}",
                    output::fields(&[
                        ("id", t.id.clone()),
                        ("access", t.access.clone()),
                        ("sessions", t.sessions.join(",")),
                        ("token", t.token.clone().unwrap_or_default()),
                    ])
                );
                outln!("the token is shown only this once");
            }
        }
        TokenCmd::List => {
            let list = c
                .tokens()
                .list_tokens(pb::Empty {})
                .await
                .map_err(|s| c.err(s))?
                .into_inner();
            if out.json {
                print_json(&serde_json::json!({
                    "tokens": list.tokens.iter().map(output::token_json).collect::<Vec<_>>(),
                }));
            } else {
                let rows: Vec<Vec<String>> = list
                    .tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.access.clone(),
                            output::time_ms(t.created_at),
                            t.sessions.join(","),
                            output::or_dash(t.description.clone()),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table(&["ID", "ACCESS", "CREATED", "SESSIONS", "DESCRIPTION"], &rows)
                );
            }
        }
        TokenCmd::Revoke(a) => {
            c.tokens()
                .revoke_token(pb::RevokeTokenRequest { id: a.id.clone() })
                .await
                .map_err(|s| c.err(s))?;
            if out.json {
                print_json(&serde_json::json!({"revoked": a.id}));
            } else {
                outln!("revoked token {}", a.id);
            }
        }
    }
    Ok(())
}
