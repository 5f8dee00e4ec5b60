//! `BatchService.ApplyBatch` end to end: changes applied in order, the failing change reported
//! by index with the ones before it kept, auth, and the size and count limits.

use tonic::Code;

use aether_proto::v1 as pb;
use pb::batch_change::Op;
use pb::batch_service_client::BatchServiceClient;
use pb::file_service_client::FileServiceClient;
use pb::session_service_client::SessionServiceClient;

use crate::common::{Server, server, server_with};
use crate::grpc::{Auth, Bearer, channel};

async fn batch_client(s: &Server, token: Option<&str>) -> BatchServiceClient<Auth> {
    BatchServiceClient::with_interceptor(channel(s).await, Bearer(token.map(str::to_owned)))
        .max_encoding_message_size(64 << 20)
}

async fn files(s: &Server) -> FileServiceClient<Auth> {
    FileServiceClient::with_interceptor(channel(s).await, Bearer(Some(s.admin.clone())))
}

async fn new_session(s: &Server) -> String {
    SessionServiceClient::with_interceptor(channel(s).await, Bearer(Some(s.admin.clone())))
        .create_session(pb::CreateSessionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id
}

fn put(path: &str, data: &[u8]) -> pb::BatchChange {
    pb::BatchChange {
        op: Some(Op::Put(pb::BatchPut {
            path: path.into(),
            data: data.to_vec(),
            mode: Some(0o644),
            no_parents: true,
            mtime_ns: None,
        })),
    }
}

fn mkdir(path: &str) -> pb::BatchChange {
    pb::BatchChange {
        op: Some(Op::Mkdir(pb::BatchMkdir {
            path: path.into(),
            parents: false,
        })),
    }
}

fn req(session: &str, changes: Vec<pb::BatchChange>) -> pb::ApplyBatchRequest {
    pb::ApplyBatchRequest {
        session: session.into(),
        changes,
    }
}

async fn content(s: &Server, session: &str, path: &str) -> Option<Vec<u8>> {
    let mut f = files(s).await;
    let mut stream = match f
        .read_file(pb::ReadFileRequest {
            session: session.into(),
            path: path.into(),
            ..Default::default()
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(st) if st.code() == Code::NotFound => return None,
        Err(st) => panic!("read {path}: {st}"),
    };
    let mut out = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        out.extend_from_slice(&m.data);
    }
    Some(out)
}

#[tokio::test]
async fn grpc_batch_applies_changes_in_order() {
    let s = server().await;
    let id = new_session(&s).await;
    let mut b = batch_client(&s, Some(&s.admin)).await;
    let changes = vec![
        mkdir("d"),
        put("d/a", b"alpha"),
        pb::BatchChange {
            op: Some(Op::Rename(pb::BatchRename {
                from: "d".into(),
                to: "e".into(),
            })),
        },
        pb::BatchChange {
            op: Some(Op::Chmod(pb::BatchChmod {
                path: "e/a".into(),
                mode: 0o600,
            })),
        },
        pb::BatchChange {
            op: Some(Op::Symlink(pb::BatchSymlink {
                path: "l".into(),
                target: "e/a".into(),
            })),
        },
        put("tmp", b"x"),
        pb::BatchChange {
            op: Some(Op::Delete(pb::BatchDelete {
                path: "tmp".into(),
                recursive: false,
            })),
        },
    ];
    let r = b.apply_batch(req(&id, changes)).await.unwrap().into_inner();
    assert_eq!(r.applied, 7);
    assert_eq!(r.results.len(), 7);
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.results[1].size, 5);
    assert!(r.results[1].oid.is_some(), "a put answers its blob id");
    assert_eq!(r.results[3].mode, 0o600);
    assert_eq!(content(&s, &id, "e/a").await.as_deref(), Some(&b"alpha"[..]));
    assert_eq!(content(&s, &id, "d/a").await, None);
    assert_eq!(content(&s, &id, "tmp").await, None);
}

#[tokio::test]
async fn grpc_batch_reports_the_failing_change_by_index() {
    let s = server().await;
    let id = new_session(&s).await;
    let mut b = batch_client(&s, Some(&s.admin)).await;
    let changes = vec![
        put("a", b"kept"),
        put("missing/b", b"refused"), // no parent, no_parents
        put("c", b"not tried"),
    ];
    let r = b.apply_batch(req(&id, changes)).await.unwrap().into_inner();
    assert_eq!(r.applied, 1);
    assert_eq!(r.results.len(), 1);
    let e = r.error.expect("the second change fails");
    assert_eq!(e.index, 1);
    assert_eq!(e.code, Code::NotFound as i32);
    assert_eq!(e.aether_code, "not_found");
    assert!(e.message.contains("missing"), "{}", e.message);
    assert_eq!(content(&s, &id, "a").await.as_deref(), Some(&b"kept"[..]));
    assert_eq!(content(&s, &id, "c").await, None);
}

#[tokio::test]
async fn grpc_batch_needs_write_access() {
    let s = server().await;
    let id = new_session(&s).await;
    let bare = batch_client(&s, None)
        .await
        .apply_batch(req(&id, vec![put("f", b"x")]))
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated);
    let token = s.read_token(&id).await;
    let read_only = batch_client(&s, Some(&token))
        .await
        .apply_batch(req(&id, vec![put("f", b"x")]))
        .await
        .unwrap_err();
    assert_eq!(read_only.code(), Code::PermissionDenied);
    assert_eq!(content(&s, &id, "f").await, None);
}

#[tokio::test]
async fn grpc_batch_limits_refuse_the_whole_request() {
    let s = server_with(|c| c.max_batch_bytes = 1000).await;
    let id = new_session(&s).await;
    let mut b = batch_client(&s, Some(&s.admin)).await;
    // Over the configured bytes: nothing applied, not even the first change.
    let too_big = b
        .apply_batch(req(&id, vec![put("small", b"x"), put("big", &[0u8; 1000])]))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big}");
    assert_eq!(content(&s, &id, "small").await, None);
    // Over the count limit.
    let many: Vec<_> = (0..10_001).map(|i| mkdir(&format!("d{i}"))).collect();
    let s2 = server().await;
    let id2 = new_session(&s2).await;
    let too_many = batch_client(&s2, Some(&s2.admin))
        .await
        .apply_batch(req(&id2, many))
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument, "{too_many}");
    // A change that names no operation is a malformed request.
    let empty = b
        .apply_batch(req(&id, vec![pb::BatchChange { op: None }]))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    // Within the limits it works.
    let ok = b
        .apply_batch(req(&id, vec![put("small", b"x")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.applied, 1);
}
