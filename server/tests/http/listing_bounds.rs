//! One directory's listing is built whole only up to `max_list_tree_entries` entries (issue
//! 34): past that bound the REST listing streams (ending with its `seq`), gRPC's one-message
//! `ListTree` refuses with `too_large` and a hint, and `WalkTree` streams every entry.

use aether_proto::v1 as pb;
use reqwest::Method;
use serde_json::Value;

use crate::admission::start;
use crate::common::split;
use crate::grpc::Bearer;

const CAP: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_past_the_bound_streams_and_is_never_answered_whole() {
    let s = start(|c| c.max_list_tree_entries = CAP).await;
    let id = s.new_session().await;
    for i in 0..CAP * 2 + 7 {
        assert_eq!(s.put(&id, &format!("wide/f{i:03}"), vec![b'x'; i]).await.0, 200);
    }
    for i in 0..5 {
        assert_eq!(s.put(&id, &format!("narrow/f{i}"), b"n".to_vec()).await.0, 200);
    }
    let list = |path: &str| {
        let req = s.req(Method::GET, &format!("/v1/sessions/{id}/tree/{path}"));
        async move { split(req.send().await.unwrap()).await }
    };

    // Within the bound: whole, with the version it shows.
    let (status, narrow) = list("narrow").await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["entries"].as_array().unwrap().len(), 5);
    assert!(narrow["seq"].is_i64(), "{narrow}");

    // Past it: every entry, streamed, sizes right, with the version of the state it walked.
    let (status, wide) = list("wide").await;
    assert_eq!(status, 200, "{wide}");
    let entries = wide["entries"].as_array().unwrap();
    assert_eq!(entries.len(), CAP * 2 + 7);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["path"], Value::String(format!("wide/f{i:03}")), "{e}");
        assert_eq!(e["size"], i, "{e}");
    }
    let seq = wide["seq"].as_i64().expect("a streamed listing ends with its version");
    assert!(seq >= narrow["seq"].as_i64().unwrap(), "{wide}");

    // gRPC: the one-message listing refuses and says what streams; WalkTree streams it all.
    let channel = crate::grpc::connect(&s.base).await;
    let mut files =
        pb::file_service_client::FileServiceClient::with_interceptor(channel, Bearer(Some(s.admin.clone())));
    let req = |path: &str| pb::ListTreeRequest {
        session: id.clone(),
        path: path.into(),
        recursive: false,
        at: None,
    };
    let err = files.list_tree(req("wide")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("WalkTree"), "{}", err.message());
    let narrow = files.list_tree(req("narrow")).await.unwrap().into_inner();
    assert_eq!(narrow.entries.len(), 5);
    let mut walk = files.walk_tree(req("wide")).await.unwrap().into_inner();
    let mut walked = 0;
    while let Some(m) = walk.message().await.unwrap() {
        walked += m.entries.len();
    }
    assert_eq!(walked, CAP * 2 + 7);
}
