//! `GET /v1/sessions/{id}/activity` (issue 28): changes from REST, gRPC and a mount, each with
//! its principal and surface, filtered and paged; bad filters are 400 and change nothing.

use reqwest::Method;
use serde_json::json;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;

use crate::common::*;
use crate::grpc::{Bearer, channel};

#[tokio::test]
async fn activity_shows_each_surface_and_principal_and_filters() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "rest.txt", b"from rest").await;
    let (status, body) = s
        .json(Method::POST, "/v1/tokens", json!({"sessions": [id], "access": "write"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let token_id = format!("token:{}", body["id"].as_str().unwrap());
    let mut files = FileServiceClient::with_interceptor(channel(&s).await, Bearer(Some(token)));
    files
        .mkdir(pb::MkdirRequest {
            session: id.clone(),
            path: "grpc-dir".into(),
            parents: false,
        })
        .await
        .unwrap();
    let mut req = tonic::Request::new(pb::MkdirRequest {
        session: id.clone(),
        path: "mounted-dir".into(),
        parents: false,
    });
    req.metadata_mut().insert("aether-mount", "m-7".parse().unwrap());
    files.mkdir(req).await.unwrap();

    let (status, all) = s.call(Method::GET, &format!("/v1/sessions/{id}/activity")).await;
    assert_eq!(status, 200, "{all}");
    let seen: Vec<(String, String, String, String)> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].is_string())
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["surface"].as_str().unwrap().to_owned(),
                e["principal"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("write".into(), "rest.txt".into(), "rest".into(), "admin".into()),
            ("mkdir".into(), "grpc-dir".into(), "grpc".into(), token_id.clone()),
            ("mkdir".into(), "mounted-dir".into(), "mount".into(), token_id.clone()),
        ]
    );
    let mounted = &all["events"].as_array().unwrap().last().unwrap();
    assert_eq!(mounted["mount"], "m-7");

    let (status, only) = s
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/activity?principal={token_id}&surface=grpc&operation=mkdir"),
        )
        .await;
    assert_eq!(status, 200, "{only}");
    assert_eq!(only["events"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["events"][0]["path"], "grpc-dir");

    let (status, page) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/activity?limit=1"))
        .await;
    assert_eq!(status, 200);
    let next = page["next"].as_i64().expect("more after the first");
    let (_, rest) = s
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/activity?after={next}&limit=1000"),
        )
        .await;
    assert_eq!(
        rest["events"].as_array().unwrap().len() + 1,
        all["events"].as_array().unwrap().len()
    );

    let (status, empty) = s
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/activity?since=10&until=5&surface="),
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["events"], json!([]), "an empty range holds nothing");
    for bad in ["surface=ftp", "operation=explode", "limit=0", "after=-1", "colour=red"] {
        let got = s.call(Method::GET, &format!("/v1/sessions/{id}/activity?{bad}")).await;
        // A query string that does not parse is 400; a filter that names nothing is 422.
        assert!(got.0 == 400 || got.0 == 422, "{bad}: {} {}", got.0, got.1);
        assert!(got.1["error"]["code"].is_string(), "{bad}: {}", got.1);
    }
}
