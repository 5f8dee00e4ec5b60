//! The gRPC API end to end: a tonic client against aetherd on an ephemeral port (h2c on the
//! HTTP port), streaming included, with every error code pinned.

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;
use pb::history_service_client::HistoryServiceClient;
use pb::meta_service_client::MetaServiceClient;
use pb::session_service_client::SessionServiceClient;
use pb::token_service_client::TokenServiceClient;

use crate::common::{Server, server, server_with};

pub(crate) type Auth = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub(crate) struct Bearer(pub(crate) Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        Ok(req)
    }
}

struct Clients {
    sessions: SessionServiceClient<Auth>,
    files: FileServiceClient<Auth>,
    history: HistoryServiceClient<Auth>,
    tokens: TokenServiceClient<Auth>,
    meta: MetaServiceClient<Auth>,
}

pub(crate) async fn channel(s: &Server) -> Channel {
    connect(&s.base).await
}

/// A gRPC channel to the server at `base` (`http://host:port`).
pub(crate) async fn connect(base: &str) -> Channel {
    Channel::from_shared(base.to_owned()).unwrap().connect().await.unwrap()
}

async fn clients(s: &Server, token: Option<&str>) -> Clients {
    let ch = channel(s).await;
    let b = Bearer(token.map(str::to_owned));
    Clients {
        sessions: SessionServiceClient::with_interceptor(ch.clone(), b.clone()),
        files: FileServiceClient::with_interceptor(ch.clone(), b.clone()),
        history: HistoryServiceClient::with_interceptor(ch.clone(), b.clone()),
        tokens: TokenServiceClient::with_interceptor(ch.clone(), b.clone()),
        meta: MetaServiceClient::with_interceptor(ch, b),
    }
}

async fn admin(s: &Server) -> Clients {
    clients(s, Some(&s.admin)).await
}

/// Every event of session `id` from the first on, then new ones as they happen.
async fn watch_all(c: &mut Clients, id: &str) -> tonic::Streaming<pb::Event> {
    watch_after(c, id, 0).await
}

/// The events of session `id` after number `seq`, then new ones as they happen.
async fn watch_after(c: &mut Clients, id: &str, seq: i64) -> tonic::Streaming<pb::Event> {
    c.sessions
        .watch_events(pb::WatchEventsRequest {
            id: id.to_owned(),
            after_seq: seq,
            from_now: false,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn new_session(c: &mut Clients) -> String {
    c.sessions
        .create_session(pb::CreateSessionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .id
}

/// `data` as WriteFile messages of `piece` bytes; the first names the file.
pub(crate) fn write_stream(
    session: &str,
    path: &str,
    offset: u64,
    data: &[u8],
    piece: usize,
) -> Vec<pb::WriteFileRequest> {
    let mut msgs: Vec<pb::WriteFileRequest> = data
        .chunks(piece)
        .map(|c| pb::WriteFileRequest {
            data: c.to_vec(),
            ..Default::default()
        })
        .collect();
    if msgs.is_empty() {
        msgs.push(pb::WriteFileRequest::default());
    }
    msgs[0].session = session.to_owned();
    msgs[0].path = path.to_owned();
    msgs[0].offset = offset;
    msgs
}

async fn write(c: &mut Clients, session: &str, path: &str, data: &[u8]) -> Result<pb::Stat, Status> {
    let msgs = write_stream(session, path, 0, data, 1 << 20);
    c.files
        .write_file(futures_util::stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

/// The whole ReadFile stream: (first message's stat, offset of the first piece, bytes).
async fn read(c: &mut Clients, req: pb::ReadFileRequest) -> Result<(Option<pb::Stat>, u64, Vec<u8>), Status> {
    let mut stream = c.files.read_file(req).await?.into_inner();
    let first = stream.message().await?.expect("a first message");
    let (stat, start, mut data) = (first.stat, first.offset, first.data);
    while let Some(m) = stream.message().await? {
        assert_eq!(m.offset, start + data.len() as u64, "pieces are contiguous");
        assert!(m.stat.is_none(), "only the first message carries the stat");
        data.extend_from_slice(&m.data);
    }
    Ok((stat, start, data))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn write_several_mib_in_chunks_and_read_back_resuming_at_offsets() {
    let s = server().await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    let data = pattern(5 * (1 << 20) + 123);
    let msgs = write_stream(&id, "big/blob.bin", 0, &data, 256 * 1024);
    assert!(msgs.len() > 20);
    let stat = c
        .files
        .write_file(futures_util::stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stat.size, data.len() as u64);
    assert!(stat.chunked, "5 MiB is over the large-file threshold");

    let req = |offset, length| pb::ReadFileRequest {
        session: id.clone(),
        path: "big/blob.bin".into(),
        offset,
        length,
        ..Default::default()
    };
    let (stat, start, all) = read(&mut c, req(0, None)).await.unwrap();
    assert_eq!(start, 0);
    let stat = stat.unwrap();
    assert_eq!(stat.oid, Some(stat_oid(&mut c, &id, "big/blob.bin").await));
    // A read's stat leaves out the extents: they list every chunk, on every ranged read.
    assert!(stat.chunked && stat.extents.is_empty(), "{:?}", stat.extents.len());
    let full = c.files.stat(pb::StatRequest {
        session: id.clone(),
        path: "big/blob.bin".into(),
        at: None,
        content_id: None,
    });
    assert!(
        full.await.unwrap().into_inner().extents.len() > 1,
        "Stat still lists the extents"
    );
    assert!(all == data, "whole read differs");
    // Resume a read where a previous one broke off.
    let (_, start, tail) = read(&mut c, req(3_000_001, None)).await.unwrap();
    assert_eq!(start, 3_000_001);
    assert!(tail == data[3_000_001..], "read from an offset differs");
    let (_, _, mid) = read(&mut c, req(10, Some(100))).await.unwrap();
    assert_eq!(mid, data[10..110]);
    // At the end: only the stat; past the end: OutOfRange.
    let (stat, _, none) = read(&mut c, req(data.len() as u64, None)).await.unwrap();
    assert!(none.is_empty() && stat.is_some());
    let err = read(&mut c, req(data.len() as u64 + 1, None)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);

    // Resume a write: keep the first 4 MiB, replace the rest.
    let keep = 4 << 20;
    let new_tail = pattern(700_000).into_iter().map(|b| b ^ 0x5a).collect::<Vec<_>>();
    let msgs = write_stream(&id, "big/blob.bin", keep as u64, &new_tail, 100_000);
    let stat = c
        .files
        .write_file(futures_util::stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stat.size, (keep + new_tail.len()) as u64);
    let (_, _, got) = read(&mut c, req(0, None)).await.unwrap();
    let mut want = data[..keep].to_vec();
    want.extend_from_slice(&new_tail);
    assert!(got == want, "resumed write differs");
    // The HTTP API sees the same bytes.
    assert!(s.get(&id, "big/blob.bin").await == want);
}

async fn stat_oid(c: &mut Clients, id: &str, path: &str) -> String {
    c.files
        .stat(pb::StatRequest {
            session: id.into(),
            path: path.into(),
            at: None,
            content_id: None,
        })
        .await
        .unwrap()
        .into_inner()
        .oid
        .unwrap()
}

/// A listing says which version of the session it shows (`seq`): following the events after
/// it misses nothing and repeats nothing it shows. REST and gRPC give the same number; a
/// listing at a revision gives none.
#[tokio::test]
async fn a_listing_says_from_which_event_to_follow_the_session() {
    let s = server().await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    write(&mut c, &id, "a", b"a").await.unwrap();
    let list = |at: Option<&str>| pb::ListTreeRequest {
        session: id.clone(),
        path: String::new(),
        recursive: false,
        at: at.map(str::to_owned),
    };
    let listed = c.files.list_tree(list(None)).await.unwrap().into_inner();
    let seq = listed.seq.expect("a live listing has a version");
    assert_eq!(listed.entries.len(), 1);
    let (status, rest) = s.call(reqwest::Method::GET, &format!("/v1/sessions/{id}/tree")).await;
    assert_eq!((status, rest["seq"].as_i64()), (200, Some(seq)), "{rest}");
    write(&mut c, &id, "b", b"b").await.unwrap();
    let mut after = watch_after(&mut c, &id, seq).await;
    let next = after.message().await.unwrap().unwrap();
    assert_eq!((next.kind(), next.path.as_deref()), (pb::EventKind::Write, Some("b")));
    let again = c.files.list_tree(list(None)).await.unwrap().into_inner();
    assert_eq!((again.entries.len(), again.seq), (2, Some(next.seq)));
    let cp = c
        .history
        .create_checkpoint(pb::CreateCheckpointRequest {
            session: id.clone(),
            message: None,
        })
        .await
        .unwrap()
        .into_inner();
    let at = format!("checkpoints/{}", cp.number);
    assert_eq!(c.files.list_tree(list(Some(&at))).await.unwrap().into_inner().seq, None);
}

#[tokio::test]
async fn watch_events_sees_history_then_a_write_as_it_happens() {
    let s = server().await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    let mut events = watch_all(&mut c, &id).await;
    let created = events.message().await.unwrap().unwrap();
    assert_eq!(
        (created.kind(), created.session.as_str()),
        (pb::EventKind::Created, id.as_str())
    );
    // Nothing else yet: the stream waits.
    let idle = tokio::time::timeout(std::time::Duration::from_millis(200), events.message()).await;
    assert!(idle.is_err(), "no event was written, none may arrive");
    write(&mut c, &id, "notes/a.txt", b"hello").await.unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.message())
        .await
        .expect("the write's event arrives without polling delay")
        .unwrap()
        .unwrap();
    assert_eq!(ev.kind(), pb::EventKind::Write);
    assert_eq!(ev.path.as_deref(), Some("notes/a.txt"));
    assert!(ev.seq > created.seq);
    let detail: serde_json::Value = serde_json::from_str(&ev.detail_json).unwrap();
    assert!(detail.is_object(), "{detail}");
    // A new watch from that cursor starts after it.
    let mut again = watch_after(&mut c, &id, ev.seq).await;
    c.history
        .create_checkpoint(pb::CreateCheckpointRequest {
            session: id.clone(),
            message: Some("one".into()),
        })
        .await
        .unwrap();
    let next = again.message().await.unwrap().unwrap();
    assert_eq!(next.kind(), pb::EventKind::Checkpoint);
    // A watch "from now" skips the history and says where it starts.
    let now = c
        .sessions
        .watch_events(pb::WatchEventsRequest {
            id: id.clone(),
            after_seq: 0,
            from_now: true,
        })
        .await
        .unwrap();
    let start: i64 = now
        .metadata()
        .get("aether-cursor")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(start, next.seq);
    let mut now = now.into_inner();
    write(&mut c, &id, "notes/b.txt", b"later").await.unwrap();
    let first = now.message().await.unwrap().unwrap();
    assert_eq!(
        (first.kind(), first.path.as_deref()),
        (pb::EventKind::Write, Some("notes/b.txt"))
    );
    let again_next = again.message().await.unwrap().unwrap();
    assert_eq!(again_next.seq, first.seq);
    // Deleting the session ends the watch with NotFound.
    c.sessions
        .delete_session(pb::GetSessionRequest { id: id.clone() })
        .await
        .unwrap();
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match again.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end.unwrap_err().code(), Code::NotFound);
}

fn code_of(status: &Status) -> (Code, &str) {
    let machine = status
        .metadata()
        .get("aether-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (status.code(), machine)
}

#[tokio::test]
async fn errors_map_to_grpc_codes() {
    let s = server_with(|c| c.max_file_size = 1000).await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    write(&mut c, &id, "dir/f", b"x").await.unwrap();

    let unknown = c
        .sessions
        .get_session(pb::GetSessionRequest {
            id: "0000000000000000000000000Z".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&unknown), (Code::NotFound, "not_found"));

    let mkdir = |path: &str| pb::MkdirRequest {
        session: id.clone(),
        path: path.into(),
        parents: false,
    };
    let exists = c.files.mkdir(mkdir("dir")).await.unwrap_err();
    assert_eq!(code_of(&exists), (Code::AlreadyExists, "already_exists"));

    let not_empty = c
        .files
        .delete_file(pb::DeleteFileRequest {
            session: id.clone(),
            path: "dir".into(),
            recursive: false,
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&not_empty), (Code::FailedPrecondition, "not_empty"));

    let bad_path = c.files.mkdir(mkdir("../escape")).await.unwrap_err();
    assert_eq!(code_of(&bad_path), (Code::InvalidArgument, "invalid_path"));

    let bad_limit = c
        .sessions
        .list_sessions(pb::ListSessionsRequest {
            limit: 1001,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code_of(&bad_limit), (Code::InvalidArgument, "bad_request"));
    assert!(bad_limit.message().contains("1 to 1000"), "{}", bad_limit.message());

    let too_large = write(&mut c, &id, "big", &[7u8; 5000]).await.unwrap_err();
    assert_eq!(code_of(&too_large), (Code::ResourceExhausted, "too_large"));

    let token = c
        .tokens
        .create_token(pb::CreateTokenRequest {
            sessions: vec![id.clone()],
            access: "read".into(),
            description: "reader".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut reader = clients(&s, token.token.as_deref()).await;
    assert!(write(&mut reader, &id, "dir/f", b"y").await.unwrap_err().code() == Code::PermissionDenied);
    let denied = reader
        .sessions
        .create_session(pb::CreateSessionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code_of(&denied), (Code::PermissionDenied, "forbidden"));
    // The reader may read its session.
    assert_eq!(read(&mut reader, file_req(&id, "dir/f")).await.unwrap().2, b"x");
    let me = reader.meta.who_am_i(pb::Empty {}).await.unwrap().into_inner();
    assert!(!me.admin && me.token.unwrap().id == token.id);

    let mut bad = clients(&s, Some("not-a-token")).await;
    let unauth = bad
        .sessions
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code_of(&unauth), (Code::Unauthenticated, "unauthorized"));
    let mut none = clients(&s, None).await;
    let missing = none.files.stat(pb::StatRequest::default()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    // Server info needs no token.
    let info = none.meta.get_info(pb::Empty {}).await.unwrap().into_inner();
    assert_eq!(info.name, "aetherd");

    let archived = c
        .sessions
        .archive_session(pb::GetSessionRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived.state, "archived");
    let read_only = write(&mut c, &id, "dir/g", b"z").await.unwrap_err();
    assert_eq!(code_of(&read_only), (Code::FailedPrecondition, "read_only"));

    // A git source that does not exist.
    let missing = c
        .sessions
        .create_session(pb::CreateSessionRequest {
            source: Some(pb::create_session_request::Source::Git(pb::GitSource {
                url: "/nonexistent/repo.git".into(),
                r#ref: None,
            })),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
}

#[tokio::test]
async fn create_from_a_git_repository() {
    let s = server().await;
    let mut c = admin(&s).await;
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo.path())
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "T")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "T")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("hello.txt"), "from git\n").unwrap();
    git(&["add", "hello.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    let session = c
        .sessions
        .create_session(pb::CreateSessionRequest {
            source: Some(pb::create_session_request::Source::Git(pb::GitSource {
                url: repo.path().to_str().unwrap().into(),
                r#ref: Some("main".into()),
            })),
            tags: vec!["git".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.tags, ["git"]);
    assert!(session.head.is_some());
    let (_, _, body) = read(&mut c, file_req(&session.id, "hello.txt")).await.unwrap();
    assert_eq!(body, b"from git\n");
}

fn file_req(id: &str, path: &str) -> pb::ReadFileRequest {
    pb::ReadFileRequest {
        session: id.into(),
        path: path.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn sessions_history_and_tar_round_trip() {
    let s = server().await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    write(&mut c, &id, "src/main.rs", b"fn main() {}").await.unwrap();
    c.files
        .symlink(pb::SymlinkRequest {
            session: id.clone(),
            path: "link".into(),
            target: "src/main.rs".into(),
        })
        .await
        .unwrap();
    let chmod = c
        .files
        .chmod(pb::ChmodRequest {
            session: id.clone(),
            path: "src/main.rs".into(),
            mode: 0o755,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(chmod.mode, 0o755);
    let cp = c
        .history
        .create_checkpoint(pb::CreateCheckpointRequest {
            session: id.clone(),
            message: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cp.number, 1);
    assert!(cp.r#ref.unwrap().ends_with("checkpoints/1"));
    c.files
        .rename(pb::RenameRequest {
            session: id.clone(),
            from: "src/main.rs".into(),
            to: "src/lib.rs".into(),
        })
        .await
        .unwrap();
    let listing = c
        .files
        .list_tree(pb::ListTreeRequest {
            session: id.clone(),
            path: String::new(),
            recursive: true,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<_> = listing.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["link", "src", "src/lib.rs"]);
    let restored = c
        .history
        .restore(pb::RestoreRequest {
            session: id.clone(),
            rev: "checkpoints/1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(restored.saved.is_some(), "the rename was saved before restoring");
    let commit = c
        .history
        .create_commit(pb::CreateCommitRequest {
            session: id.clone(),
            message: "first".into(),
            author: Some(pb::Person {
                name: "Ada".into(),
                email: "ada@example.com".into(),
            }),
            branch: None,
        })
        .await
        .unwrap()
        .into_inner();
    let log = c
        .history
        .log(pb::LogRequest {
            session: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(log.commits[0].id, commit.id);
    let shown = c
        .history
        .get_commit(pb::GetCommitRequest {
            session: id.clone(),
            rev: commit.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.author.unwrap().name, "Ada");
    assert!(shown.changes_next.is_none(), "one page holds them all");
    // The same changes a page of one at a time, each page's cursor leading to the next.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .history
            .get_commit(pb::GetCommitRequest {
                session: id.clone(),
                rev: commit.id.clone(),
                after: after.clone(),
                limit: 1,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.changes.len() <= 1);
        paged.extend(page.changes);
        after = page.changes_next;
        if after.is_none() {
            break;
        }
    }
    assert_eq!(paged, shown.changes);

    let updated = c
        .sessions
        .update_session(pb::UpdateSessionRequest {
            id: id.clone(),
            set_labels: [("team".to_owned(), "infra".to_owned())].into(),
            replace_tags: true,
            tags: vec!["blue".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.labels["team"], "infra");
    assert_eq!(updated.tags, ["blue"]);
    let listed = c
        .sessions
        .list_sessions(pb::ListSessionsRequest {
            labels: [("team".to_owned(), "infra".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions.len(), 1);
    let fork = c
        .sessions
        .fork_session(pb::ForkSessionRequest {
            id: id.clone(),
            at: Some("checkpoints/1".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fork.parent.as_deref(), Some(id.as_str()));

    // Export as tar.gz over a stream, import it back over a stream.
    let mut export = c
        .sessions
        .export_tar(pb::ExportTarRequest {
            id: id.clone(),
            at: None,
            gzip: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut tar = Vec::new();
    while let Some(chunk) = export.message().await.unwrap() {
        tar.extend_from_slice(&chunk.data);
    }
    assert_eq!(&tar[..2], &[0x1f, 0x8b], "gzip magic");
    let mut msgs: Vec<_> = tar
        .chunks(1000)
        .map(|c| pb::ImportTarRequest {
            data: c.to_vec(),
            ..Default::default()
        })
        .collect();
    msgs[0].tags = vec!["imported".into()];
    let imported = c
        .sessions
        .import_tar(futures_util::stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.tags, ["imported"]);
    let (_, _, body) = read(&mut c, file_req(&imported.id, "src/main.rs")).await.unwrap();
    assert_eq!(body, b"fn main() {}");
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_token_and_rest_keeps_its_404() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = server().await;
    let ch = channel(&s).await;
    let mut health = HealthClient::new(ch.clone());
    for service in ["", "aether.v1.SessionService", "aether.v1.FileService"] {
        let mut status = 0;
        // The reporter is filled by a task spawned at start-up: allow it a moment.
        for _ in 0..50 {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await;
            if let Ok(r) = r {
                status = r.into_inner().status;
                if status == ServingStatus::Serving as i32 {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(status, ServingStatus::Serving as i32, "health of '{service}'");
    }

    let mut reflection = ServerReflectionClient::new(ch.clone());
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "aether.v1.SessionService",
        "aether.v1.FileService",
        "aether.v1.HistoryService",
        "aether.v1.TokenService",
        "aether.v1.MetaService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    // An unknown gRPC service is Unimplemented; REST keeps its own JSON 404.
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary::<pb::Empty, pb::Empty, _>(
            Request::new(pb::Empty {}),
            tonic::codegen::http::uri::PathAndQuery::from_static("/aether.v1.Nope/Call"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    let (status, body) = s.call(reqwest::Method::GET, "/v1/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

/// Each change's event says where it came from: the surface, the principal, and the mount when
/// a mount (a gRPC client sending `aether-mount`) made it. A malformed mount id is refused
/// before anything changes.
#[tokio::test]
async fn events_name_the_surface_principal_and_mount_of_each_change() {
    let s = server().await;
    let mut c = admin(&s).await;
    let id = new_session(&mut c).await;
    write(&mut c, &id, "by-grpc", b"1").await.unwrap();
    s.put(&id, "by-rest", b"2").await;
    let as_mount = |m: &str| {
        let mut req = Request::new(futures_util::stream::iter(write_stream(&id, "by-mount", 0, b"3", 1024)));
        req.metadata_mut().insert("aether-mount", m.parse().unwrap());
        req
    };
    c.files.write_file(as_mount("m-0123abcd")).await.unwrap();
    let refused = c.files.write_file(as_mount("not/a/mount")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let mut events = watch_all(&mut c, &id).await;
    let origin = |surface: pb::Surface, mount: Option<&str>| pb::Origin {
        surface: surface as i32,
        principal: "admin".into(),
        mount: mount.map(str::to_owned),
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = events.message().await.unwrap().unwrap();
        seen.push((e.kind(), e.path.clone(), e.origin.clone()));
    }
    assert_eq!(
        seen,
        [
            (pb::EventKind::Created, None, Some(origin(pb::Surface::Grpc, None))),
            (
                pb::EventKind::Write,
                Some("by-grpc".into()),
                Some(origin(pb::Surface::Grpc, None))
            ),
            (
                pb::EventKind::Write,
                Some("by-rest".into()),
                Some(origin(pb::Surface::Rest, None))
            ),
            (
                pb::EventKind::Write,
                Some("by-mount".into()),
                Some(origin(pb::Surface::Mount, Some("m-0123abcd")))
            ),
        ]
    );
    // The refused write left nothing and recorded nothing.
    let idle = tokio::time::timeout(std::time::Duration::from_millis(200), events.message()).await;
    assert!(idle.is_err(), "a refused request records no event");
}
