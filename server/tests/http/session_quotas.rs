//! Usage and per-session quotas over REST and gRPC: exact figures of a session and its fork,
//! 507 `quota_exceeded` / RESOURCE_EXHAUSTED for a write over the quota (nothing stored), forks
//! inheriting the quota, only the admin changing it, an import over its quota refused; a
//! retention policy of checkpoints applied by the admin collection route.

use reqwest::Method;
use serde_json::json;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;
use pb::usage_service_client::UsageServiceClient;

use crate::common::{Server, assert_error, server, split};
use crate::grpc::{Bearer, channel};

async fn put_status(s: &Server, id: &str, path: &str, data: Vec<u8>) -> (u16, serde_json::Value) {
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/{path}"))
        .body(data)
        .send()
        .await
        .unwrap();
    split(resp).await
}

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_usage_over_rest_and_grpc() {
    let s = server().await;
    let (status, created) = s
        .json(
            Method::POST,
            "/v1/sessions",
            json!({"quota": {"bytes": 1000, "files": 10}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["quota"], json!({"bytes": 1000, "files": 10}));
    let id = created["id"].as_str().unwrap().to_owned();
    s.put(&id, "a", &bytes(1, 600)).await;
    let over = put_status(&s, &id, "b", bytes(2, 600)).await;
    assert_error(&over, 507, "quota_exceeded");
    assert_eq!(s.call(Method::GET, &format!("/v1/sessions/{id}/stat/b")).await.0, 404);

    let (status, usage) = s.call(Method::GET, &format!("/v1/sessions/{id}/usage")).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        (
            &usage["files"],
            &usage["bytes"],
            &usage["unique_bytes"],
            &usage["shared_bytes"]
        ),
        (&json!(1), &json!(600), &json!(600), &json!(0)),
        "{usage}"
    );

    // Its health says what is left under the quota.
    let (status, health) = s.call(Method::GET, &format!("/v1/sessions/{id}/health")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        health["quota"],
        json!({"limit_bytes": 1000, "limit_files": 10, "used_bytes": 600, "used_files": 1,
               "bytes_left": 400, "files_left": 9}),
        "{health}"
    );
    assert_eq!(health["status"], "ok", "{health}");

    // gRPC: the same refusal, the same figures.
    let ch = channel(&s).await;
    let mut files = FileServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let msg = pb::WriteFileRequest {
        session: id.clone(),
        path: "c".into(),
        data: bytes(3, 600),
        ..Default::default()
    };
    let st = files
        .write_file(futures_util::stream::iter(vec![msg]))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
    assert_eq!(st.metadata().get("aether-code").unwrap(), "quota_exceeded");
    let mut usage_client = UsageServiceClient::with_interceptor(ch, Bearer(Some(s.admin.clone())));
    let u = usage_client
        .get_session_usage(pb::GetSessionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((u.files, u.bytes, u.unique_bytes), (1, 600, 600));
    assert_eq!(u.quota.unwrap().bytes, Some(1000));

    // A fork inherits the quota and counts only its own bytes.
    let (status, fork) = s.call(Method::POST, &format!("/v1/sessions/{id}/fork")).await;
    assert_eq!(status, 201, "{fork}");
    assert_eq!(fork["quota"], json!({"bytes": 1000, "files": 10}));
    let child = fork["id"].as_str().unwrap().to_owned();
    s.put(&child, "mine", &bytes(4, 900)).await;
    let (_, cu) = s.call(Method::GET, &format!("/v1/sessions/{child}/usage")).await;
    assert_eq!(
        (&cu["bytes"], &cu["unique_bytes"], &cu["shared_bytes"], &cu["cow_bytes"]),
        (&json!(1500), &json!(900), &json!(600), &json!(900)),
        "{cu}"
    );

    // Only the admin changes a quota: a token that may write the session may not lift it.
    let body = json!({"sessions": [id], "access": "write"});
    let (_, tok) = s.json(Method::POST, "/v1/tokens", body).await;
    let writer = tok["token"].as_str().unwrap();
    let resp = s
        .anon(Method::PATCH, &format!("/v1/sessions/{id}"))
        .bearer_auth(writer)
        .json(&json!({"quota": {}}))
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 403, "forbidden");
    let (status, patched) = s
        .json(
            Method::PATCH,
            &format!("/v1/sessions/{id}"),
            json!({"quota": {"bytes": 5000}}),
        )
        .await;
    assert_eq!(
        (status, &patched["quota"]),
        (200, &json!({"bytes": 5000, "files": null})),
        "{patched}"
    );
    s.put(&id, "b", &bytes(2, 600)).await;
    // A quota that is not a number of 0 or more is refused.
    let (status, _) = s
        .json(
            Method::PATCH,
            &format!("/v1/sessions/{id}"),
            json!({"quota": {"bytes": -1}}),
        )
        .await;
    assert_eq!(status, 400);

    // Server-wide figures (admin only).
    let (status, all) = s.call(Method::GET, "/v1/usage").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        (&all["sessions"], &all["bytes"]),
        (&json!(2), &json!(1200 + 1500)),
        "{all}"
    );
    assert!(all["disk"]["total"].as_u64().unwrap() > 0, "{all}");
    let resp = s
        .anon(Method::GET, "/v1/usage")
        .bearer_auth(writer)
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_over_its_quota_is_refused_and_creates_nothing() {
    let s = server().await;
    let mut tar = tar::Builder::new(Vec::new());
    let data = bytes(9, 5000);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "f", &data[..]).unwrap();
    let body = tar.into_inner().unwrap();
    let resp = s
        .req(Method::POST, "/v1/sessions/import?quota_bytes=1000")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 507, "quota_exceeded");
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert_eq!(list["sessions"], json!([]), "{list}");
    let resp = s
        .req(Method::POST, "/v1/sessions/import?quota_bytes=lots")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 400, "bad_request");
    let resp = s
        .req(Method::POST, "/v1/sessions/import?quota_bytes=10000")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, created) = split(resp).await;
    assert_eq!((status, &created["quota"]["bytes"]), (201, &json!(10000)), "{created}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_policy_expires_checkpoints_at_the_next_collection() {
    let s = crate::common::server_with(|c| c.gc.grace = std::time::Duration::ZERO).await;
    let (status, created) = s
        .json(Method::POST, "/v1/sessions", json!({"retention": {"keep_last": 2}}))
        .await;
    assert_eq!(
        (status, &created["retention"]),
        (201, &json!({"keep_last": 2, "keep_days": null})),
        "{created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    for n in 0..4u8 {
        s.put(&id, "f", &bytes(n, 3000)).await;
        let (status, cp) = s
            .json(Method::POST, &format!("/v1/sessions/{id}/checkpoints"), json!({}))
            .await;
        assert_eq!(status, 201, "{cp}");
    }
    let (status, report) = s.json(Method::POST, "/v1/admin/gc", json!({"dry_run": false})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["checkpoints_expired"], 2, "{report}");
    let (_, cps) = s.call(Method::GET, &format!("/v1/sessions/{id}/checkpoints")).await;
    let numbers: Vec<u64> = cps["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 4], "{cps}");
    let (status, _) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/files/f?at=checkpoints/1"))
        .await;
    assert_eq!(status, 404);
    let resp = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/f?at=checkpoints/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes(2, 3000));
    // A policy that would keep nothing is refused.
    let (status, body) = s
        .json(
            Method::PATCH,
            &format!("/v1/sessions/{id}"),
            json!({"retention": {"keep_last": 0}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}
