//! `GET /v1/analytics` and `GET /v1/sessions/{id}/health` (issue 28): known traffic over REST
//! and gRPC gives exact operation counts and bytes in the right session and buckets, the busiest
//! session and path are the ones that got it, percentiles are ordered; health names an attached
//! mount with its pending change, the last failed operation and a failed import.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tonic::Request;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;
use pb::mount_service_client::MountServiceClient;
use pb::session_service_client::SessionServiceClient;

use crate::common::*;
use crate::grpc::{Bearer, channel};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn latency_of<'a>(report: &'a Value, op: &str) -> &'a Value {
    report["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == op)
        .unwrap_or_else(|| panic!("no latency of {op}: {report}"))
}

#[tokio::test]
async fn known_traffic_gives_exact_counts_in_its_session_and_buckets() {
    let s = server().await;
    let busy = s.new_session().await;
    let quiet = s.new_session().await;
    let started = now_ms();

    // REST: three writes of known sizes to one path, two whole reads and one range read.
    for n in [100, 200, 300] {
        s.put(&busy, "hot.txt", &vec![b'x'; n]).await;
    }
    assert_eq!(s.get(&busy, "hot.txt").await.len(), 300);
    assert_eq!(s.get(&busy, "hot.txt").await.len(), 300);
    let ranged = s
        .req(Method::GET, &format!("/v1/sessions/{busy}/files/hot.txt"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().len(), 10);
    // gRPC: a write of 50 bytes and a read of them.
    let ch = channel(&s).await;
    let mut files = FileServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let msg = pb::WriteFileRequest {
        session: busy.clone(),
        path: "hot.txt".into(),
        data: vec![b'g'; 50],
        ..Default::default()
    };
    files.write_file(futures_util::stream::iter(vec![msg])).await.unwrap();
    let mut read = files
        .read_file(pb::ReadFileRequest {
            session: busy.clone(),
            path: "hot.txt".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(m) = read.message().await.unwrap() {
        got += m.data.len();
    }
    assert_eq!(got, 50);
    // The other session: one write of 7 bytes elsewhere.
    s.put(&quiet, "q.txt", b"quietly").await;
    let ended = now_ms();

    let (status, mine) = s
        .call(Method::GET, &format!("/v1/analytics?session={busy}&bucket=minute"))
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["session"], busy.as_str());
    assert_eq!(
        mine["totals"],
        json!({"operations": 8, "errors": 0, "bytes_read": 660, "bytes_written": 650}),
        "4 writes (100 + 200 + 300 + 50 bytes), 4 reads (300 + 300 + 10 + 50 bytes): {mine}"
    );
    // Every bucket with traffic is a minute of the test, and together they hold it all.
    let buckets = mine["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 2, "{mine}");
    let mut sum = (0, 0, 0);
    for b in buckets {
        let start = b["start"].as_i64().unwrap();
        assert_eq!(start % 60_000, 0, "{b}");
        assert!(
            start <= ended && start + 60_000 > started,
            "{b} outside {started}..{ended}"
        );
        sum.0 += b["operations"].as_u64().unwrap();
        sum.1 += b["bytes_read"].as_u64().unwrap();
        sum.2 += b["bytes_written"].as_u64().unwrap();
    }
    assert_eq!(sum, (8, 660, 650));
    assert_eq!(
        mine["top_paths"][0],
        json!({"session": busy, "path": "hot.txt", "operations": 8})
    );
    // A range that ended before the test holds nothing of it.
    let (_, before) = s
        .call(
            Method::GET,
            &format!("/v1/analytics?session={busy}&until={}", started - 60_000),
        )
        .await;
    assert_eq!(before["totals"]["operations"], 0, "{before}");

    let (status, all) = s.call(Method::GET, "/v1/analytics?bucket=hour&top=5").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["bucket"], "hour");
    assert_eq!(all["bucket_ms"], 3_600_000);
    assert_eq!(all["session"], Value::Null);
    assert_eq!(all["totals"]["operations"], 9, "{all}");
    assert_eq!(all["totals"]["bytes_written"], 657, "{all}");
    let top = all["top_sessions"].as_array().unwrap();
    assert_eq!(top.len(), 2, "{all}");
    assert_eq!(top[0]["session"], busy.as_str(), "the busiest session first: {all}");
    assert_eq!(
        top[1],
        json!({"session": quiet, "operations": 1, "errors": 0, "bytes_read": 0, "bytes_written": 7})
    );
    assert_eq!(all["top_paths"][0]["path"], "hot.txt");
    for (op, count) in [("write", 5), ("read", 4)] {
        let l = latency_of(&all, op);
        assert_eq!(l["count"], count, "{l}");
        let (p50, p90, p99) = (
            l["p50_us"].as_u64().unwrap(),
            l["p90_us"].as_u64().unwrap(),
            l["p99_us"].as_u64().unwrap(),
        );
        assert!(p50 > 0 && p50 <= p90 && p90 <= p99, "{l}");
    }

    // gRPC answers the same.
    let mut sessions = SessionServiceClient::with_interceptor(ch, Bearer(Some(s.admin.clone())));
    let report = sessions
        .get_analytics(pb::GetAnalyticsRequest {
            session: Some(busy.clone()),
            bucket: Some("day".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let totals = report.totals.unwrap();
    assert_eq!(
        (totals.operations, totals.bytes_read, totals.bytes_written),
        (8, 660, 650)
    );
    assert_eq!(report.bucket_ms, 86_400_000);
}

#[tokio::test]
async fn analytics_refuse_bad_queries_and_other_callers_traffic() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "f", b"1").await;
    for bad in ["bucket=week", "top=0", "top=101"] {
        let got = s.call(Method::GET, &format!("/v1/analytics?{bad}")).await;
        assert!(got.0 == 400 || got.0 == 422, "{bad}: {} {}", got.0, got.1);
    }
    let got = s.call(Method::GET, "/v1/analytics?colour=red").await;
    assert_error(&got, 400, "bad_request");
    // A scoped token sees the sessions it may read, never the whole server.
    let token = s.read_token(&id).await;
    let as_token = |path: String| {
        let req = s.anon(Method::GET, &path).bearer_auth(&token);
        async move { split(req.send().await.unwrap()).await }
    };
    assert_error(&as_token("/v1/analytics".into()).await, 403, "forbidden");
    let (status, mine) = as_token(format!("/v1/analytics?session={id}")).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["totals"]["bytes_written"], 1);
    let other = s.new_session().await;
    assert_error(
        &as_token(format!("/v1/analytics?session={other}")).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn health_names_an_attached_mount_the_last_error_and_a_failed_import() {
    let s = server_with(|c| c.stale_mount = Duration::ZERO).await;
    let id = s.new_session().await;

    let (status, h) = s.call(Method::GET, &format!("/v1/sessions/{id}/health")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["mounts"], json!([]));
    assert_eq!(h["import"], Value::Null);
    assert_eq!(h["last_error"], Value::Null);
    assert_eq!(h["quota"], Value::Null);
    assert!(h["updated_at"].as_i64().is_some(), "{h}");

    // A mount attaches and holds a change the server does not have.
    let ch = channel(&s).await;
    let mut mount = MountServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let report = |r| pb::MountReport { report: Some(r) };
    tx.send(report(pb::mount_report::Report::Session(id.clone()))).unwrap();
    tx.send(report(pb::mount_report::Report::Dirty(1))).unwrap();
    let outgoing = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut attach = Request::new(outgoing);
    attach
        .metadata_mut()
        .insert("aether-mount", "m-health".parse().unwrap());
    let mut commands = mount.attach(attach).await.unwrap().into_inner();
    let first = commands.message().await.unwrap().unwrap();
    assert_eq!(first.command, Some(pb::mount_command::Command::Ack(1)));

    let (_, h) = s.call(Method::GET, &format!("/v1/sessions/{id}/health")).await;
    let mounts = h["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{h}");
    assert_eq!(mounts[0]["mount"], "m-health");
    assert_eq!(mounts[0]["writer"], true);
    assert!(mounts[0]["pending_ms"].is_u64(), "a pending change has an age: {h}");
    assert_eq!(h["status"], "degraded", "older than the configured 0 s: {h}");
    assert!(h["reasons"][0].as_str().unwrap().contains("m-health"), "{h}");
    // The same over gRPC.
    let mut sessions = SessionServiceClient::with_interceptor(ch, Bearer(Some(s.admin.clone())));
    let g = sessions
        .get_session_health(pb::GetSessionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.status, "degraded");
    assert_eq!(g.mounts.len(), 1);
    assert_eq!(g.mounts[0].mount, "m-health");
    assert!(g.mounts[0].pending_ms.is_some());
    assert!(g.quota.is_none());

    // Clean again: nothing pending (the report travels on its own stream: wait for it).
    tx.send(report(pb::mount_report::Report::Clean(2))).unwrap();
    let mut h = Value::Null;
    for _ in 0..200 {
        h = s.call(Method::GET, &format!("/v1/sessions/{id}/health")).await.1;
        if h["mounts"][0]["pending_ms"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h["mounts"][0]["pending_ms"], Value::Null, "{h}");
    assert_eq!(h["status"], "ok", "{h}");

    // The last failed operation.
    let missing = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/no/such/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (_, h) = s.call(Method::GET, &format!("/v1/sessions/{id}/health")).await;
    assert_eq!(h["last_error"]["operation"], "read", "{h}");
    assert_eq!(h["last_error"]["code"], "not_found", "{h}");
    assert_eq!(
        h["status"], "ok",
        "a caller's mistake does not degrade the session: {h}"
    );
    drop(tx);

    // A git import that fails names the id it reserved; its health says why it failed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = json!({"source": {"type": "git", "url": format!("http://127.0.0.1:{port}/repo.git")}});
    let got = s.json(Method::POST, "/v1/sessions", source).await;
    assert_error(&got, 502, "source_unreachable");
    let reserved = got.1["error"]["details"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("the reserved id: {}", got.1))
        .to_owned();
    let (status, h) = s.call(Method::GET, &format!("/v1/sessions/{reserved}/health")).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["import"]["state"], "failed", "{h}");
    assert_eq!(h["import"]["error"]["code"], "source_unreachable", "{h}");
    assert_eq!(h["updated_at"], Value::Null, "no session was made: {h}");
    // Ids that name nothing are still 404.
    let (status, _) = s
        .call(Method::GET, "/v1/sessions/00000000000000000000000000/health")
        .await;
    assert_eq!(status, 404);
}
