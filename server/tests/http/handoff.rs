//! The handoff channel over the wire: a mount attached with `MountService.Attach` that says it
//! is dirty and then does not answer a recall holds a REST read, a gRPC read and a git fetch
//! back for at most `handoff_timeout`, and each then says which mount it went on without
//! (`aether-handoff-incomplete`); the SIGTERM drain ends the channel like a watch.

use std::time::{Duration, Instant};

use reqwest::Method;
use tonic::Request;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;
use pb::mount_service_client::MountServiceClient;

use crate::common::server_with;
use crate::grpc::{Bearer, channel};

#[tokio::test]
async fn a_silent_dirty_mount_delays_reads_at_most_the_timeout_and_is_named() {
    let s = server_with(|c| c.handoff_timeout = Duration::from_millis(300)).await;
    let id = s.new_session().await;
    s.put(&id, "f", b"on the server").await;

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
        .insert("aether-mount", "m-silent".parse().unwrap());
    let mut commands = mount.attach(attach).await.unwrap().into_inner();
    let first = commands.message().await.unwrap().unwrap();
    assert_eq!(first.command, Some(pb::mount_command::Command::Ack(1)));

    // REST: the read waits for the mount, then goes on and names it.
    let started = Instant::now();
    let r = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/f"))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("aether-handoff-incomplete")
            .map(|v| v.to_str().unwrap()),
        Some("m-silent")
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(matches!(
        commands.message().await.unwrap().unwrap().command,
        Some(pb::mount_command::Command::Recall(_))
    ));

    // gRPC: the same, in the response metadata.
    let mut files = FileServiceClient::with_interceptor(ch.clone(), Bearer(Some(s.admin.clone())));
    let resp = files
        .stat(pb::StatRequest {
            session: id.clone(),
            path: "f".into(),
            at: None,
            content_id: None,
        })
        .await
        .unwrap();
    assert_eq!(
        resp.metadata()
            .get("aether-handoff-incomplete")
            .map(|v| v.to_str().unwrap()),
        Some("m-silent")
    );
    // A read at a checkpoint does not wait: only the live state has changes in mounts.
    let (st, cp) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/checkpoints"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(st, 201, "{cp}");
    let r = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/f?at=checkpoints/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A recall of the silent mount would have timed out and named it.
    assert!(r.headers().get("aether-handoff-incomplete").is_none());

    // The mount answers the next recall: the read is exact, and says nothing.
    let answer = tokio::spawn(async move {
        while let Some(c) = commands.message().await.unwrap() {
            if let Some(pb::mount_command::Command::Recall(n)) = c.command {
                let recalled = pb::Recalled {
                    recall: n,
                    refused: 0,
                    error: None,
                };
                tx.send(report(pb::mount_report::Report::Recalled(recalled))).unwrap();
            }
        }
    });
    let r = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/f"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("aether-handoff-incomplete").is_none());
    answer.abort();
}

#[tokio::test]
async fn attach_needs_a_mount_id_and_a_session_first() {
    let s = server_with(|_| {}).await;
    let id = s.new_session().await;
    let ch = channel(&s).await;
    let mut mount = MountServiceClient::with_interceptor(ch, Bearer(Some(s.admin.clone())));
    let report = |r| pb::MountReport { report: Some(r) };
    // No aether-mount metadata.
    let first = futures_util::stream::iter(vec![report(pb::mount_report::Report::Session(id.clone()))]);
    let e = mount.attach(first).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // A first report that is not the session.
    let mut req = Request::new(futures_util::stream::iter(vec![report(
        pb::mount_report::Report::Dirty(1),
    )]));
    req.metadata_mut().insert("aether-mount", "m-1".parse().unwrap());
    let e = mount.attach(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
}
