//! One error vocabulary: the same failure through REST and through gRPC carries the same code
//! string (REST's `error.code`, gRPC's `aether-code`), each surface with its own fitting status.

use reqwest::Method;
use tonic::{Code, Status};

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;
use pb::session_service_client::SessionServiceClient;

use crate::common::{Server, server, server_with, split};
use crate::grpc::{Auth, Bearer, channel};

async fn files(s: &Server, token: &str) -> FileServiceClient<Auth> {
    FileServiceClient::with_interceptor(channel(s).await, Bearer(Some(token.to_owned())))
}

/// The gRPC code and `aether-code` of a failed call.
fn grpc(s: Status) -> (Code, String) {
    let code = s
        .metadata()
        .get("aether-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<no aether-code>")
        .to_owned();
    (s.code(), code)
}

/// The REST status and `error.code` of a response.
async fn rest(resp: reqwest::Response) -> (u16, String) {
    let (status, body) = split(resp).await;
    (status, body["error"]["code"].as_str().unwrap_or("<no code>").to_owned())
}

/// Read `path` over gRPC: the first message or the call's failure.
async fn grpc_read(c: &mut FileServiceClient<Auth>, read: pb::ReadFileRequest) -> Result<(), Status> {
    let mut stream = c.read_file(read).await?.into_inner();
    stream.message().await.map(|_| ())
}

fn read_req(session: &str, path: &str) -> pb::ReadFileRequest {
    pb::ReadFileRequest {
        session: session.to_owned(),
        path: path.to_owned(),
        ..Default::default()
    }
}

/// Assert both surfaces answered with `code`, REST with `status`, gRPC with `grpc_code`.
fn same(what: &str, rest: (u16, String), grpc: (Code, String), code: &str, status: u16, grpc_code: Code) {
    assert_eq!(rest, (status, code.to_owned()), "{what} over REST");
    assert_eq!(grpc, (grpc_code, code.to_owned()), "{what} over gRPC");
}

#[tokio::test]
async fn the_same_failure_has_the_same_code_over_rest_and_grpc() {
    let s = server_with(|c| c.max_file_size = 1000).await;
    let id = s.new_session().await;
    s.put(&id, "f", b"0123456789").await;
    let (status, _) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/symlink"),
            serde_json::json!({"path": "link", "target": "f"}),
        )
        .await;
    assert_eq!(status, 200);
    let mut admin = files(&s, &s.admin).await;
    let file_url = |path: &str| format!("/v1/sessions/{id}/files/{path}");

    // Reading a symlink's content.
    let r = rest(s.req(Method::GET, &file_url("link")).send().await.unwrap()).await;
    let g = grpc(grpc_read(&mut admin, read_req(&id, "link")).await.unwrap_err());
    same("a symlink read", r, g, "is_a_symlink", 409, Code::FailedPrecondition);

    // A path that does not exist, and a session that does not exist.
    let r = rest(s.req(Method::GET, &file_url("nope")).send().await.unwrap()).await;
    let g = grpc(grpc_read(&mut admin, read_req(&id, "nope")).await.unwrap_err());
    same("a missing file", r, g, "not_found", 404, Code::NotFound);
    let unknown = "0000000000000000000000000z";
    let r = rest(
        s.req(Method::GET, &format!("/v1/sessions/{unknown}/files/f"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let g = grpc(grpc_read(&mut admin, read_req(unknown, "f")).await.unwrap_err());
    same("a missing session", r, g, "not_found", 404, Code::NotFound);

    // A read-only token writing.
    let token = s.read_token(&id).await;
    let r = rest(
        s.anon(Method::POST, &format!("/v1/sessions/{id}/fs/mkdir"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"path": "d"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut scoped = files(&s, &token).await;
    let g = grpc(
        scoped
            .mkdir(pb::MkdirRequest {
                session: id.clone(),
                path: "d".into(),
                parents: false,
            })
            .await
            .unwrap_err(),
    );
    same("a scoped token writing", r, g, "forbidden", 403, Code::PermissionDenied);

    // A read naming content the file no longer holds (If-Match / content_id).
    let other = "95d09f2b10159347eece71399a7e2e907ea3df4f";
    let r = rest(
        s.req(Method::GET, &file_url("f"))
            .header("if-match", format!("\"{other}\""))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut stale = read_req(&id, "f");
    stale.content_id = Some(other.into());
    let g = grpc(grpc_read(&mut admin, stale).await.unwrap_err());
    same("a stale read", r, g, "stale", 412, Code::FailedPrecondition);

    // A file over the size limit.
    let r = rest(
        s.req(Method::PUT, &file_url("big"))
            .body(vec![7u8; 5000])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let head = pb::WriteFileRequest {
        session: id.clone(),
        path: "big".into(),
        data: vec![7u8; 5000],
        ..Default::default()
    };
    let g = grpc(admin.write_file(tokio_stream_of(vec![head])).await.unwrap_err());
    same("a file over the limit", r, g, "too_large", 413, Code::ResourceExhausted);

    // Reading from past the end.
    let r = rest(
        s.req(Method::GET, &file_url("f"))
            .header("range", "bytes=100-")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let mut past = read_req(&id, "f");
    past.offset = 100;
    let g = grpc(grpc_read(&mut admin, past).await.unwrap_err());
    same(
        "a read past the end",
        r,
        g,
        "range_not_satisfiable",
        416,
        Code::OutOfRange,
    );
}

#[tokio::test]
async fn a_page_limit_out_of_range_is_bad_request_on_both_surfaces() {
    let s = server().await;
    let r = rest(s.req(Method::GET, "/v1/sessions?limit=1001").send().await.unwrap()).await;
    let mut sessions = SessionServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())));
    let g = grpc(
        sessions
            .list_sessions(pb::ListSessionsRequest {
                limit: 1001,
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    same("limit 1001", r, g, "bad_request", 400, Code::InvalidArgument);
    let r = rest(s.req(Method::GET, "/v1/sessions?state=sleeping").send().await.unwrap()).await;
    let g = grpc(
        sessions
            .list_sessions(pb::ListSessionsRequest {
                state: Some("sleeping".into()),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    same("an unknown state", r, g, "bad_request", 400, Code::InvalidArgument);
}

/// A client stream of `msgs`.
fn tokio_stream_of<T: Send + 'static>(msgs: Vec<T>) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::iter(msgs)
}
