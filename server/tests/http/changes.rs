//! `GET /v1/sessions/{id}/changes` and gRPC `ChangesSince`: paths changed under a prefix since
//! a position of the event log, "everything" when the log cannot say exactly.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Server, assert_error, server};

async fn changes(s: &Server, id: &str, query: &str) -> Value {
    let (status, body) = s.call(Method::GET, &format!("/v1/sessions/{id}/changes?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn paths(v: &Value) -> Vec<&str> {
    v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn rest_answers_paths_since_a_position_under_a_prefix_and_everything_when_it_cannot() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "repo/a", b"a").await;
    s.put(&id, "elsewhere", b"e").await;
    let first = changes(&s, &id, "prefix=repo").await;
    assert_eq!(
        (first["everything"].clone(), first["reason"].clone()),
        (json!(true), json!("unknown_position"))
    );
    let pos = first["position"].as_i64().unwrap();
    assert!(pos > 0);

    s.put(&id, "repo/b", b"b").await;
    s.put(&id, "elsewhere", b"changed").await;
    let (status, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/rename"),
            json!({"from": "repo/a", "to": "repo/c"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let got = changes(&s, &id, &format!("since={pos}&prefix=repo")).await;
    assert_eq!(got["everything"], json!(false), "{got}");
    assert_eq!(paths(&got), ["a", "a/", "b", "c", "c/"]);
    let root = changes(&s, &id, &format!("since={pos}")).await;
    assert!(paths(&root).contains(&"elsewhere"), "{root}");

    // Beyond the head, or not a number: everything, or a bad request.
    let beyond = changes(&s, &id, &format!("since={}&prefix=repo", pos + 1_000_000)).await;
    assert_eq!(beyond["reason"], "unknown_position");
    let bad = s.call(Method::GET, &format!("/v1/sessions/{id}/changes?since=x")).await;
    assert_error(&bad, 400, "bad_request");

    // A restore since: everything.
    let (status, cp) = s
        .json(Method::POST, &format!("/v1/sessions/{id}/checkpoints"), json!({}))
        .await;
    assert_eq!(status, 201, "{cp}");
    let (status, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/restore"),
            json!({"rev": "checkpoints/1"}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let got = changes(&s, &id, &format!("since={pos}&prefix=repo")).await;
    assert_eq!(
        (got["everything"].clone(), got["reason"].clone()),
        (json!(true), json!("reset"))
    );

    // Events pruned past the position: everything.
    let fresh = changes(&s, &id, "").await["position"].as_i64().unwrap();
    s.put(&id, "repo/d", b"d").await;
    assert_eq!(
        changes(&s, &id, &format!("since={fresh}")).await["everything"],
        json!(false)
    );
    let db = rusqlite::Connection::open(s.data_dir().join("meta.db")).unwrap();
    db.execute(
        "DELETE FROM events WHERE session_id = ?1 AND seq <= ?2",
        rusqlite::params![id, fresh],
    )
    .unwrap();
    let got = changes(&s, &id, &format!("since={fresh}")).await;
    assert_eq!(got["reason"], "pruned", "{got}");
}

#[tokio::test]
async fn grpc_changes_since_answers_the_same() {
    use aether_proto::v1 as pb;
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "repo/a", b"a").await;
    let first = changes(&s, &id, "").await["position"].as_i64().unwrap();
    s.put(&id, "repo/x/y", b"y").await;
    let ch = crate::grpc::channel(&s).await;
    let token: tonic::metadata::MetadataValue<_> = format!("Bearer {}", s.admin).parse().unwrap();
    let mut c =
        pb::session_service_client::SessionServiceClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        });
    let got = c
        .changes_since(pb::ChangesSinceRequest {
            id: id.clone(),
            since: Some(first),
            prefix: "repo/x".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!got.everything, "{got:?}");
    assert_eq!(got.paths, ["y"]);
    let none = c
        .changes_since(pb::ChangesSinceRequest {
            id,
            since: None,
            prefix: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.everything && none.reason == "unknown_position", "{none:?}");
}
