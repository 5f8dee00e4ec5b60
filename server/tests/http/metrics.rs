//! `GET /metrics`: Prometheus' text exposition of every surface's requests, for the admin token,
//! checked by `promtool check metrics` (Debian package `prometheus`; a failure when missing
//! with `CI=true`).

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;

use aether_proto::v1 as pb;

use crate::common::server;

/// The value of the sample line `name{labels}` (labels in the exposition's order), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_each_surface_s_requests_for_the_admin_only_and_pass_promtool() {
    let s = server().await;
    let id = s.new_session().await;
    for _ in 0..3 {
        s.put(&id, "f.txt", b"hello").await;
    }
    assert_eq!(s.get(&id, "f.txt").await, b"hello");
    let mut files = pb::file_service_client::FileServiceClient::with_interceptor(
        crate::grpc::channel(&s).await,
        crate::grpc::Bearer(Some(s.admin.clone())),
    );
    for _ in 0..2 {
        files
            .stat(pb::StatRequest {
                session: id.clone(),
                path: "f.txt".into(),
                at: None,
                content_id: None,
            })
            .await
            .unwrap();
    }
    let refs = s
        .req(Method::GET, &format!("/git/{id}.git/info/refs?service=git-upload-pack"))
        .send()
        .await
        .unwrap();
    assert_eq!(refs.status(), 200);

    // A listing at a checkpoint reads its tree (through the tree cache).
    let cp = s
        .req(Method::POST, &format!("/v1/sessions/{id}/checkpoints"))
        .json(&serde_json::json!({"message": "one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cp.status(), 201, "{}", cp.text().await.unwrap());
    let listed = s
        .req(Method::GET, &format!("/v1/sessions/{id}/tree?at=checkpoints/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    // A collection, a failed import and a good one: their counters move.
    let gc = s
        .req(Method::POST, "/v1/admin/gc")
        .json(&serde_json::json!({"dry_run": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(gc.status(), 200);
    let bad = s
        .req(Method::POST, "/v1/sessions/import")
        .body(b"not a tar at all".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let resp = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers()
    );
    let text = resp.text().await.unwrap();
    let puts =
        r#"aether_requests_total{surface="rest",route="/v1/sessions/{id}/files/{*path}",method="PUT",status="200"}"#;
    assert_eq!(sample(&text, puts), Some(3.0), "{text}");
    let stats =
        r#"aether_requests_total{surface="grpc",route="/aether.v1.FileService/Stat",method="POST",status="200"}"#;
    assert_eq!(sample(&text, stats), Some(2.0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"aether_requests_total{surface="git""#)),
        "{text}"
    );
    for store in ["objects", "chunks", "metadata", "cache"] {
        let bytes = sample(&text, &format!(r#"aether_storage_bytes{{store="{store}"}}"#));
        assert!(bytes.is_some(), "{store}: {text}");
    }
    let objects = sample(&text, r#"aether_storage_bytes{store="objects"}"#).unwrap();
    let metadata = sample(&text, r#"aether_storage_bytes{store="metadata"}"#).unwrap();
    assert!(objects > 0.0 && metadata > 0.0, "{text}");
    // The memory caches, each with its cap: the session's tree was read, so the tree cache
    // holds something, and never more than its cap.
    let trees = sample(&text, r#"aether_cache_bytes{cache="trees"}"#).unwrap();
    let trees_max = sample(&text, r#"aether_cache_max_bytes{cache="trees"}"#).unwrap();
    assert!(trees > 0.0 && trees <= trees_max, "{text}");
    for cache in ["manifests", "sizes", "revisions"] {
        assert!(
            sample(&text, &format!(r#"aether_cache_bytes{{cache="{cache}"}}"#)).is_some(),
            "{cache}: {text}"
        );
    }
    assert!(sample(&text, "aether_sessions_loaded").unwrap() >= 1.0, "{text}");
    // The sessions loaded weigh something, within their cap (`--sessions-cache-bytes`).
    let sessions = sample(&text, r#"aether_cache_bytes{cache="sessions"}"#).unwrap();
    let sessions_max = sample(&text, r#"aether_cache_max_bytes{cache="sessions"}"#).unwrap();
    assert!(sessions > 0.0 && sessions <= sessions_max, "{text}");
    // Bytes of content: three 5-byte writes in, one 5-byte read out (a stat reads none).
    assert_eq!(
        sample(&text, r#"aether_content_bytes_total{direction="in"}"#),
        Some(15.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"aether_content_bytes_total{direction="out"}"#),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"aether_gc_runs_total{result="ran"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "aether_gc_removed_bytes_total").is_some(), "{text}");
    assert!(sample(&text, "aether_gc_removed_objects_total").is_some(), "{text}");
    // The collection packed what the writes above left loose.
    assert!(
        sample(&text, "aether_objects_packed_total").is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(sample(&text, "aether_git_packs").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "aether_git_loose_objects").is_some(), "{text}");
    assert_eq!(
        sample(&text, r#"aether_imports_total{result="failed"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"aether_imports_total{result="ok"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(sample(&text, "aether_mounts_attached"), Some(0.0), "{text}");
    // Labels are templates: no session id, path or client-chosen name becomes a series.
    assert!(!text.contains(&id), "{text}");
    let count =
        r#"aether_request_duration_seconds_count{surface="rest",route="/v1/sessions/{id}/files/{*path}",method="PUT"}"#;
    assert_eq!(sample(&text, count), Some(3.0), "{text}");

    // The admin token only.
    let anon = s.anon(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(anon.status(), 401);
    let reader = s.read_token(&id).await;
    let read = s
        .anon(Method::GET, "/metrics")
        .bearer_auth(reader)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403);

    if !aether_test_support::prereq::promtool(
        "metrics_count_each_surface_s_requests_for_the_admin_only_and_pass_promtool",
    ) {
        return;
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With `--metrics-auth none` a scraper needs no token; by default it needs the admin token.
#[tokio::test]
async fn metrics_auth_is_configurable() {
    let open = crate::admission::start(|c| c.metrics_auth = aether_server::config::MetricsAuth::None).await;
    let resp = reqwest::get(format!("{}/metrics", open.base)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("aether_storage_bytes"));
    // Only /metrics opens: everything else still needs a token.
    let resp = reqwest::get(format!("{}/v1/sessions", open.base)).await.unwrap();
    assert_eq!(resp.status(), 401);

    let closed = crate::admission::start(|_| {}).await;
    let resp = reqwest::get(format!("{}/metrics", closed.base)).await.unwrap();
    assert_eq!(resp.status(), 401);
}
