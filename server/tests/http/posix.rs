//! Owners, special files and hard links over REST (`/fs/chown`, `/fs/mknod`, `/fs/link`), gRPC
//! (`Chown`, `Mknod`, `Link`) and gRPC batches, bad input included: each refusal is typed and
//! changes nothing.

use reqwest::Method;
use serde_json::json;
use tonic::Code;

use aether_proto::v1 as pb;
use pb::batch_change::Op;
use pb::batch_service_client::BatchServiceClient;
use pb::file_service_client::FileServiceClient;

use crate::common::*;
use crate::grpc::{Auth, Bearer, channel};

async fn fs(s: &Server, id: &str, op: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    s.json(Method::POST, &format!("/v1/sessions/{id}/fs/{op}"), body).await
}

async fn stat(s: &Server, id: &str, path: &str) -> serde_json::Value {
    let (status, body) = s.call(Method::GET, &format!("/v1/sessions/{id}/stat/{path}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn rest_chown_mknod_and_link() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a", b"one").await;
    assert!(stat(&s, &id, "a").await.get("uid").is_none(), "absent when never set");
    assert_eq!(stat(&s, &id, "a").await["nlink"], 1);

    let (status, st) = fs(&s, &id, "chown", json!({"path": "a", "uid": 1000, "gid": 100})).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!((st["uid"].clone(), st["gid"].clone()), (json!(1000), json!(100)));
    let (status, st) = fs(&s, &id, "chown", json!({"path": "a", "gid": 5})).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!((st["uid"].clone(), st["gid"].clone()), (json!(1000), json!(5)));

    let (status, st) = fs(
        &s,
        &id,
        "mknod",
        json!({"path": "tty", "kind": "char_device", "mode": "620", "rdev": 1025}),
    )
    .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(
        (st["kind"].clone(), st["mode"].clone(), st["rdev"].clone()),
        (json!("char_device"), json!(0o620), json!(1025))
    );
    let (status, st) = fs(&s, &id, "mknod", json!({"path": "p", "kind": "fifo", "mode": 420})).await;
    assert_eq!(status, 200, "{st}");
    assert!(st.get("rdev").is_none(), "{st}");
    let read = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/p"))
        .send()
        .await
        .unwrap();
    assert_error(&split(read).await, 409, "is_a_special_file");

    let (status, st) = fs(&s, &id, "link", json!({"from": "a", "to": "b"})).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["nlink"], 2);
    assert_eq!(st["uid"], 1000, "the new name is the same file");
    let group = st["link"].clone();
    assert!(group.is_u64(), "{st}");
    s.put(&id, "b", b"through b").await;
    assert_eq!(s.get(&id, "a").await, b"through b");
    assert_eq!(stat(&s, &id, "a").await["link"], group);
    s.call(Method::DELETE, &format!("/v1/sessions/{id}/files/b")).await;
    let a = stat(&s, &id, "a").await;
    assert_eq!(a["nlink"], 1);
    assert_eq!(s.get(&id, "a").await, b"through b");

    s.json(
        Method::POST,
        &format!("/v1/sessions/{id}/fs/mkdir"),
        json!({"path": "d/e/f", "parents": true}),
    )
    .await;
    assert_eq!(stat(&s, &id, "d").await["nlink"], 3, "2 + one subdirectory");

    // The stat JSON of a listing carries the same fields.
    let (status, listing) = s.call(Method::GET, &format!("/v1/sessions/{id}/tree")).await;
    assert_eq!(status, 200, "{listing}");
    let tty = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "tty")
        .unwrap()
        .clone();
    assert_eq!(tty["kind"], "char_device");
}

#[tokio::test]
async fn rest_bad_input_is_typed_and_changes_nothing() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "f", b"x").await;
    s.json(
        Method::POST,
        &format!("/v1/sessions/{id}/fs/mkdir"),
        json!({"path": "d"}),
    )
    .await;
    let cases = [
        (
            "mknod",
            json!({"path": "n", "kind": "pipe", "mode": "644"}),
            422,
            "invalid_argument",
        ),
        (
            "mknod",
            json!({"path": "n", "kind": "fifo", "mode": 4096}),
            422,
            "invalid_argument",
        ),
        (
            "mknod",
            json!({"path": "n", "kind": "fifo", "mode": "17777"}),
            422,
            "invalid_argument",
        ),
        (
            "mknod",
            json!({"path": "f", "kind": "fifo", "mode": "644"}),
            409,
            "already_exists",
        ),
        (
            "mknod",
            json!({"path": "no/n", "kind": "fifo", "mode": "644"}),
            404,
            "not_found",
        ),
        ("link", json!({"from": "d", "to": "d2"}), 409, "is_a_directory"),
        ("link", json!({"from": "missing", "to": "g"}), 404, "not_found"),
        ("link", json!({"from": "f", "to": "d"}), 409, "already_exists"),
        ("chown", json!({"path": "missing", "uid": 1}), 404, "not_found"),
        ("chown", json!({"path": "f", "uid": -1}), 400, "invalid_json"),
    ];
    for (op, body, status, code) in cases {
        let got = fs(&s, &id, op, body.clone()).await;
        assert_error(&got, status, code);
    }
    let (status, listing) = s.call(Method::GET, &format!("/v1/sessions/{id}/tree")).await;
    assert_eq!(status, 200);
    let names: Vec<_> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["d", "f"], "nothing changed");
    let f = stat(&s, &id, "f").await;
    assert!(f.get("uid").is_none() && f.get("link").is_none(), "{f}");
}

async fn files(s: &Server) -> FileServiceClient<Auth> {
    FileServiceClient::with_interceptor(channel(s).await, Bearer(Some(s.admin.clone())))
}

#[tokio::test]
async fn grpc_chown_mknod_link_and_batches() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a", b"one").await;
    let mut f = files(&s).await;
    let st = f
        .chown(pb::ChownRequest {
            session: id.clone(),
            path: "a".into(),
            uid: Some(7),
            gid: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.uid, st.gid, st.nlink), (Some(7), None, 1));
    let st = f
        .mknod(pb::MknodRequest {
            session: id.clone(),
            path: "sda".into(),
            kind: "block_device".into(),
            mode: 0o660,
            rdev: 2048,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.kind.as_str(), st.rdev, st.mode), ("block_device", 2048, 0o660));
    let st = f
        .link(pb::LinkRequest {
            session: id.clone(),
            from: "a".into(),
            to: "b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((st.nlink, st.uid), (2, Some(7)));
    assert!(st.link.is_some());

    // Bad input: typed statuses.
    let err = f
        .mknod(pb::MknodRequest {
            session: id.clone(),
            path: "x".into(),
            kind: "door".into(),
            mode: 0o644,
            rdev: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = f
        .link(pb::LinkRequest {
            session: id.clone(),
            from: "".into(),
            to: "r".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.metadata().get("aether-code").unwrap().to_str().unwrap()),
        (Code::FailedPrecondition, "is_a_directory")
    );
    let err = f
        .chown(pb::ChownRequest {
            session: id.clone(),
            path: "nope".into(),
            uid: Some(1),
            gid: Some(1),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A batch: link, chown, mknod, then a link to a directory fails at its index.
    let mut batch = BatchServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())));
    let change = |op| pb::BatchChange { op: Some(op) };
    let out = batch
        .apply_batch(pb::ApplyBatchRequest {
            session: id.clone(),
            changes: vec![
                change(Op::Link(pb::BatchLink {
                    from: "b".into(),
                    to: "c".into(),
                })),
                change(Op::Chown(pb::BatchChown {
                    path: "c".into(),
                    uid: None,
                    gid: Some(9),
                })),
                change(Op::Mknod(pb::BatchMknod {
                    path: "sock".into(),
                    kind: "socket".into(),
                    mode: 0o755,
                    rdev: 0,
                })),
                change(Op::Link(pb::BatchLink {
                    from: "".into(),
                    to: "r".into(),
                })),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.applied, 3);
    assert_eq!(out.results[0].nlink, 3);
    assert_eq!((out.results[1].uid, out.results[1].gid), (Some(7), Some(9)));
    assert_eq!(out.results[2].kind, "socket");
    let e = out.error.expect("the link of the root fails");
    assert_eq!((e.index, e.aether_code.as_str()), (3, "is_a_directory"));
    assert_eq!(
        stat(&s, &id, "a").await["gid"],
        9,
        "the chown of one name reached the others"
    );
}
