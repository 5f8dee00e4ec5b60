//! Modification times set over REST (`/fs/utimes`, `x-aether-mtime` on PUT), gRPC (`SetTimes`,
//! `WriteFile.mtime_ns`, `BatchSetTimes`): kept to the nanosecond, through a checkpoint and a
//! restore, recorded as a `set_times` event; bad input is typed and changes nothing.

use reqwest::Method;
use serde_json::json;
use tonic::Code;

use aether_proto::v1 as pb;
use pb::batch_change::Op;
use pb::batch_service_client::BatchServiceClient;
use pb::file_service_client::FileServiceClient;
use pb::session_service_client::SessionServiceClient;

use crate::common::*;
use crate::grpc::{Auth, Bearer, channel};

const T: i64 = 1_234_567_890_123_456_789;

async fn mtime(s: &Server, id: &str, path: &str) -> i64 {
    let (status, body) = s.call(Method::GET, &format!("/v1/sessions/{id}/stat/{path}")).await;
    assert_eq!(status, 200, "{body}");
    body["mtime_ns"].as_i64().unwrap()
}

async fn utimes(s: &Server, id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    s.json(Method::POST, &format!("/v1/sessions/{id}/fs/utimes"), body)
        .await
}

#[tokio::test]
async fn rest_sets_times_and_keeps_them_through_checkpoint_and_restore() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a", b"one").await;
    let (status, st) = utimes(&s, &id, json!({"path": "a", "mtime_ns": T})).await;
    assert_eq!((status, st["mtime_ns"].as_i64()), (200, Some(T)), "{st}");

    // A PUT with its mtime.
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/d/b"))
        .header("x-aether-mtime", (T + 1).to_string())
        .body("two")
        .send()
        .await
        .unwrap();
    let (status, st) = split(resp).await;
    assert_eq!((status, st["mtime_ns"].as_i64()), (200, Some(T + 1)), "{st}");
    let (status, st) = utimes(&s, &id, json!({"path": "d", "mtime_ns": 5})).await;
    assert_eq!(status, 200, "{st}");

    let (status, cp) = s
        .json(Method::POST, &format!("/v1/sessions/{id}/checkpoints"), json!({}))
        .await;
    assert_eq!(status, 201, "{cp}");
    let number = cp["number"].as_u64().unwrap();
    utimes(&s, &id, json!({"path": "a", "mtime_ns": 1})).await;
    s.put(&id, "d/b", b"changed").await;
    let (status, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/restore"),
            json!({"rev": format!("checkpoints/{number}")}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(mtime(&s, &id, "a").await, T);
    assert_eq!(mtime(&s, &id, "d/b").await, T + 1);
    assert_eq!(mtime(&s, &id, "d").await, 5);

    // Bad input: typed, and nothing changes.
    let cases = [
        (json!({"path": "a", "mtime_ns": -1}), 422, "invalid_argument"),
        (json!({"path": "missing", "mtime_ns": 1}), 404, "not_found"),
        (json!({"path": "a", "mtime_ns": 1e30}), 400, "invalid_json"),
        (json!({"path": "a", "mtime_ns": "yesterday"}), 400, "invalid_json"),
        (json!({"path": "a"}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        assert_error(&utimes(&s, &id, body.clone()).await, status, code);
    }
    for bad in ["-5", "soon", "99999999999999999999"] {
        let resp = s
            .req(Method::PUT, &format!("/v1/sessions/{id}/files/a"))
            .header("x-aether-mtime", bad)
            .body("never")
            .send()
            .await
            .unwrap();
        assert_error(&split(resp).await, 422, "invalid_argument");
    }
    assert_eq!(s.get(&id, "a").await, b"one");
    assert_eq!(mtime(&s, &id, "a").await, T);
}

#[tokio::test]
async fn grpc_sets_times_in_calls_writes_and_batches_and_records_the_event() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a", b"one").await;
    let ch = channel(&s).await;
    let mut f: FileServiceClient<Auth> = FileServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let st = f
        .set_times(pb::SetTimesRequest {
            session: id.clone(),
            path: "a".into(),
            mtime_ns: T,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.mtime_ns, T);
    let err = f
        .set_times(pb::SetTimesRequest {
            session: id.clone(),
            path: "a".into(),
            mtime_ns: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.metadata().get("aether-code").unwrap().to_str().unwrap()),
        (Code::InvalidArgument, "invalid_argument")
    );

    let head = pb::WriteFileRequest {
        session: id.clone(),
        path: "w".into(),
        data: b"written".to_vec(),
        mtime_ns: Some(T + 2),
        ..Default::default()
    };
    let st = f
        .write_file(futures_util::stream::iter(vec![head]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.mtime_ns, T + 2);
    assert_eq!(mtime(&s, &id, "w").await, T + 2);

    // A batch: a put, then its times (as a mount sends `tar -x`), then a bad time fails there.
    let mut batch = BatchServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let change = |op| pb::BatchChange { op: Some(op) };
    let out = batch
        .apply_batch(pb::ApplyBatchRequest {
            session: id.clone(),
            changes: vec![
                change(Op::Put(pb::BatchPut {
                    path: "t/x".into(),
                    data: b"x".to_vec(),
                    ..Default::default()
                })),
                change(Op::SetTimes(pb::BatchSetTimes {
                    path: "t/x".into(),
                    mtime_ns: T + 3,
                })),
                change(Op::SetTimes(pb::BatchSetTimes {
                    path: "t/x".into(),
                    mtime_ns: -3,
                })),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.applied, 2);
    assert_eq!(out.results[1].mtime_ns, T + 3);
    assert_eq!(
        out.error.map(|e| (e.index, e.aether_code)),
        Some((2, "invalid_argument".to_owned()))
    );
    assert_eq!(mtime(&s, &id, "t/x").await, T + 3);

    // The event log says what changed, with the time.
    let mut sessions = SessionServiceClient::with_interceptor(ch, Bearer(Some(s.admin.clone())));
    let mut stream = sessions
        .watch_events(pb::WatchEventsRequest {
            id: id.clone(),
            after_seq: 0,
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let ev = stream.message().await.unwrap().unwrap();
            if ev.kind == pb::EventKind::SetTimes as i32 {
                return ev;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev.path.as_deref(), Some("a"));
    let detail: serde_json::Value = serde_json::from_str(&ev.detail_json).unwrap();
    assert_eq!(detail["mtime_ns"], json!(T));
}
