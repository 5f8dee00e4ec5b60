//! Connection handling: header read timeout, aborted uploads, shutdown with
//! long-lived streams, and what the log looks like in a pipe. The connection limit is in
//! `admission`.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use aether_proto::v1 as pb;
use pb::mount_service_client::MountServiceClient;
use pb::session_service_client::SessionServiceClient;

use crate::common::{server_with, split};
use crate::grpc::Bearer;
use crate::process::Aetherd;

fn quick_headers(c: &mut aether_server::config::Config) {
    c.connections.header_read_timeout = Duration::from_secs(1);
}

/// Read until the server closes the connection or `limit` passes; how long it took, if it closed.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn connections_that_do_not_finish_their_headers_are_closed() {
    let s = server_with(quick_headers).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Silent: connects and sends nothing.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Trickling: a request line and then nothing.
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for (what, stream) in [("silent", &mut silent), ("trickling", &mut trickle)] {
        let took = closed_within(stream, Duration::from_secs(8)).await;
        assert!(
            took.is_some_and(|t| t < Duration::from_secs(4)),
            "a {what} connection was held open: {took:?}"
        );
    }
    // A prompt client on a kept-alive connection is served.
    let (status, body) = split(s.req(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
}

/// Start a PUT of `announced` bytes, send `sent` of them, and hang up.
async fn abandoned_upload(addr: &str, admin: &str, path: &str, announced: usize, sent: usize) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Length: {announced}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b'x'; sent]).await.unwrap();
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(tcp);
}

/// A client that goes away mid-upload is the client's problem: no 500, nothing logged as an
/// error, nothing written; and the process logs without colour codes to a pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_is_not_a_server_error_and_the_log_has_no_colour() {
    let d = Aetherd::start(&[]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/sessions", d.base()))
        .bearer_auth(&d.admin)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(created).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    for (n, (announced, sent)) in [(10 << 20, 300 << 10), (4 << 20, 10)].into_iter().enumerate() {
        abandoned_upload(
            &d.addr,
            &d.admin,
            &format!("/v1/sessions/{id}/files/big{n}"),
            announced,
            sent,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..2 {
        let resp = client
            .get(format!("{}/v1/sessions/{id}/stat/big{n}", d.base()))
            .bearer_auth(&d.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "an abandoned upload was written");
    }
    let log = d.log();
    assert!(!log.contains("ERROR") && !log.contains("500"), "{log}");
    assert!(log.contains("aetherd listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log written to a pipe: {log:?}"
    );
}

/// SIGTERM while a watch stream and a mount's `Attach` stream are connected and an unfinished
/// upload holds a blocking thread: the streams end at once with UNAVAILABLE, the upload gets the
/// drain time, and the process exits within drain + grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_watch_streams_and_exits_after_a_bounded_drain() {
    let mut d = Aetherd::start(&["--shutdown-drain-secs", "2", "--shutdown-grace-secs", "1"]);
    let channel = tonic::transport::Channel::from_shared(d.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sessions = SessionServiceClient::with_interceptor(channel.clone(), Bearer(Some(d.admin.clone())));
    let id = sessions
        .create_session(pb::CreateSessionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut events = sessions
        .watch_events(pb::WatchEventsRequest {
            id: id.clone(),
            after_seq: 0,
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        events.message().await.unwrap().unwrap().kind(),
        aether_proto::v1::EventKind::Created
    );
    // A mount's handoff channel, which lasts as long as the mount.
    let mut mount = MountServiceClient::with_interceptor(channel, Bearer(Some(d.admin.clone())));
    let hello = pb::MountReport {
        report: Some(pb::mount_report::Report::Session(id.clone())),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(hello).unwrap();
    let outgoing = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut attach = tonic::Request::new(outgoing);
    attach.metadata_mut().insert("aether-mount", "m-1".parse().unwrap());
    let mut commands = mount.attach(attach).await.unwrap().into_inner();
    // An upload that will never finish: past the read-ahead, it holds a job and a blocking
    // thread (its ingest waits for the rest of the body) and its connection through the drain.
    let mut stuck = TcpStream::connect(&d.addr).await.unwrap();
    let head = format!(
        "PUT /v1/sessions/{id}/files/stuck HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n",
        d.admin
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    stuck.write_all(&vec![b'x'; 300 << 10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    d.terminate();
    let ended = tokio::time::timeout(Duration::from_secs(5), events.message())
        .await
        .expect("the watch stream did not end on shutdown");
    let waited = signalled.elapsed();
    match ended {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(m) => panic!("the watch stream ended without a status: {m:?}"),
    }
    assert!(waited < Duration::from_secs(1), "the watch took {waited:?} to end");
    let ended = tokio::time::timeout(Duration::from_secs(5), commands.message())
        .await
        .expect("the handoff channel did not end on shutdown");
    assert!(matches!(&ended, Err(s) if s.code() == Code::Unavailable), "{ended:?}");
    drop(tx);
    let exit = tokio::task::block_in_place(|| d.wait_exit(Duration::from_secs(10)));
    let took = signalled.elapsed();
    let log = d.log();
    assert!(exit.is_some(), "aetherd did not exit after SIGTERM: {log}");
    assert!(exit.unwrap().success(), "{log}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "the drain took {took:?}, configured 2 s: {log}"
    );
    assert!(log.contains("aetherd stopped"), "{log}");
    drop(stuck);
}
