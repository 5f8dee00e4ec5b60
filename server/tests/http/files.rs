use reqwest::Method;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_NONE_MATCH, RANGE};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn put_get_head_range_and_etag() {
    let s = server().await;
    let id = s.new_session().await;
    let stat = s.put(&id, "dir/hello.txt", b"hello world").await;
    assert_eq!(stat["oid"], "95d09f2b10159347eece71399a7e2e907ea3df4f", "git blob id");
    let url = format!("/v1/sessions/{id}/files/dir/hello.txt");

    let full = s.req(Method::GET, &url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let etag = full.headers()[ETAG].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"95d09f2b10159347eece71399a7e2e907ea3df4f\"");
    assert_eq!(full.bytes().await.unwrap().as_ref(), b"hello world");

    let head = s.req(Method::HEAD, &url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "11");

    let not_modified = s
        .req(Method::GET, &url)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    let part = s.req(Method::GET, &url).header(RANGE, "bytes=6-").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()[CONTENT_RANGE], "bytes 6-10/11");
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"world");
    let suffix = s.req(Method::GET, &url).header(RANGE, "bytes=-5").send().await.unwrap();
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), b"world");

    let bad = s
        .req(Method::GET, &url)
        .header(RANGE, "bytes=50-60")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.headers()[CONTENT_RANGE], "bytes */11");
    assert_error(&split(bad).await, 416, "range_not_satisfiable");
}

#[tokio::test]
async fn patch_writes_ranges_and_truncates() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "f", b"hello world").await;
    let url = format!("/v1/sessions/{id}/files/f");
    let resp = s
        .req(Method::PATCH, &format!("{url}?offset=6"))
        .body("WORLD")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.get(&id, "f").await, b"hello WORLD");
    let resp = s.req(Method::PATCH, &format!("{url}?truncate=5")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.get(&id, "f").await, b"hello");
    let resp = s.req(Method::PATCH, &url).body("x").send().await.unwrap();
    assert_error(&split(resp).await, 422, "invalid_argument");
    let resp = s
        .req(Method::PATCH, &format!("{url}?offset=abc"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 400, "bad_request");
}

#[tokio::test]
async fn tree_stat_and_namespace_operations() {
    let s = server_with(|c| c.large_file_threshold = 64 * 1024).await;
    let id = s.new_session().await;
    s.put(&id, "a/one", b"1").await;
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.put(&id, "a/big.bin", &big).await;
    assert_eq!(s.get(&id, "a/big.bin").await, big);

    let (status, st) = s.call(Method::GET, &format!("/v1/sessions/{id}/stat/a/big.bin")).await;
    assert_eq!(status, 200);
    assert_eq!(st["chunked"], true);
    let extents = st["extents"].as_array().unwrap();
    assert!(extents.len() > 1);
    assert_eq!(
        extents.iter().map(|e| e["length"].as_u64().unwrap()).sum::<u64>(),
        300_000
    );

    let (_, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/rename"),
            json!({"from": "a", "to": "b"}),
        )
        .await;
    assert_eq!(r["kind"], "dir");
    let (_, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/mkdir"),
            json!({"path": "x/y", "parents": true}),
        )
        .await;
    assert_eq!(r["kind"], "dir");
    let (_, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/symlink"),
            json!({"path": "ln", "target": "b/one"}),
        )
        .await;
    assert_eq!(r["symlink_target"], "b/one");
    let (_, r) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/chmod"),
            json!({"path": "b/one", "mode": 493}),
        )
        .await;
    assert_eq!(r["mode"], 493);

    let (status, tree) = s.call(Method::GET, &format!("/v1/sessions/{id}/tree")).await;
    assert_eq!(status, 200);
    let names: Vec<_> = tree["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "ln", "x"]);
    let (_, deep) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/tree/b?recursive=true"))
        .await;
    assert_eq!(deep["entries"].as_array().unwrap().len(), 2);

    let link = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/ln"))
        .send()
        .await
        .unwrap();
    assert_error(&split(link).await, 409, "is_a_symlink");
    let dir = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/b"))
        .send()
        .await
        .unwrap();
    assert_error(&split(dir).await, 409, "is_a_directory");
    assert_error(
        &s.call(Method::DELETE, &format!("/v1/sessions/{id}/files/b")).await,
        409,
        "not_empty",
    );
    let (status, _) = s
        .call(Method::DELETE, &format!("/v1/sessions/{id}/files/b?recursive=true"))
        .await;
    assert_eq!(status, 204);
    assert_error(
        &s.call(Method::GET, &format!("/v1/sessions/{id}/stat/b")).await,
        404,
        "not_found",
    );
    assert_error(
        &s.json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/mkdir"),
            json!({"path": "x"}),
        )
        .await,
        409,
        "already_exists",
    );
    assert_error(
        &s.json(
            Method::POST,
            &format!("/v1/sessions/{id}/fs/chmod"),
            json!({"path": "x", "mode": "999"}),
        )
        .await,
        422,
        "invalid_argument",
    );
}

#[tokio::test]
async fn streamed_put_without_length() {
    let s = server_with(|c| c.large_file_threshold = 64 * 1024).await;
    let id = s.new_session().await;
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = (0..40u8).map(|i| Ok(vec![i; 50_000])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/streamed"))
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, st) = split(resp).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["size"], 2_000_000);
    let expected: Vec<u8> = (0..40u8).flat_map(|i| vec![i; 50_000]).collect();
    assert_eq!(s.get(&id, "streamed").await, expected);
}
