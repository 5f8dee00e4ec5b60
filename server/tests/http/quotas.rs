//! Per-token quotas (issue 34): a scoped token over its request rate, or over its heavy
//! operations at once, is refused at once with 429 + `Retry-After`, code `rate_limited` (gRPC
//! RESOURCE_EXHAUSTED with the same `aether-code`), on every surface; other tokens and the
//! admin go on.

use reqwest::Method;
use tokio::io::AsyncReadExt;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;

use crate::admission::start;
use crate::common::split;
use crate::grpc::Bearer;

async fn token(s: &crate::admission::Admitted, session: &str) -> String {
    let resp = s
        .req(Method::POST, "/v1/tokens")
        .json(&serde_json::json!({"sessions": [session], "access": "write"}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A request of `path` carrying `token` (and no other credential).
fn as_token(s: &crate::admission::Admitted, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_with_retry_after_on_rest_and_grpc() {
    let s = start(|c| {
        c.quotas.requests_per_second = 1;
        c.quotas.burst = 3;
    })
    .await;
    let id = s.new_session().await;
    assert_eq!(s.put(&id, "f", b"x".to_vec()).await.0, 200);
    let (limited, other) = (token(&s, &id).await, token(&s, &id).await);
    let get = |t: &str| as_token(&s, t, Method::GET, &format!("/v1/sessions/{id}/files/f")).send();
    for _ in 0..3 {
        assert_eq!(get(&limited).await.unwrap().status(), 200);
    }
    let resp = get(&limited).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (_, body) = split(resp).await;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // gRPC counts against the same bucket.
    let ch = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut files = FileServiceClient::with_interceptor(ch, Bearer(Some(limited.clone())));
    let st = files
        .stat(pb::StatRequest {
            session: id.clone(),
            path: "f".into(),
            at: None,
            content_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
    assert_eq!(st.metadata().get("aether-code").unwrap(), "rate_limited");
    assert_eq!(st.metadata().get("retry-after").unwrap(), "1");

    // Another token and the admin are not held back.
    assert_eq!(get(&other).await.unwrap().status(), 200);
    for _ in 0..10 {
        assert_eq!(s.side_read(&id, "f").await, Ok(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_heavy_operations_gets_429_until_one_ends() {
    let s = start(|c| c.quotas.max_heavy_per_token = 1).await;
    let id = s.new_session().await;
    let big: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    assert_eq!(s.put(&id, "big", big).await.0, 200);
    let t = token(&s, &id).await;
    // An export left unread: a heavy operation of `t` for as long as its response is open.
    let head = format!("GET /v1/sessions/{id}/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n");
    let mut tcp = s.raw_small_window(&head).await;
    let mut first = vec![0u8; 16 << 10];
    let n = tcp.read(&mut first).await.unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );

    let checkpoint = |who: &str| {
        as_token(&s, who, Method::POST, &format!("/v1/sessions/{id}/checkpoints"))
            .json(&serde_json::json!({}))
            .send()
    };
    let resp = checkpoint(&t).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let (_, body) = split(resp).await;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Light requests of the same token, and the admin's heavy ones, go on.
    let resp = as_token(&s, &t, Method::GET, &format!("/v1/sessions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(checkpoint(&s.admin).await.unwrap().status().is_success());

    drop(tcp);
    let mut last = 0;
    for _ in 0..100 {
        last = checkpoint(&t).await.unwrap().status().as_u16();
        if last != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        (200..300).contains(&last),
        "the heavy permit came back when the export ended: {last}"
    );
}
