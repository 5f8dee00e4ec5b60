use reqwest::Method;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn unknown_routes_methods_and_bad_bodies() {
    let s = server().await;
    assert_error(&s.call(Method::GET, "/v1/nope").await, 404, "not_found");
    assert_error(&s.call(Method::PUT, "/v1/sessions").await, 405, "method_not_allowed");
    let resp = s
        .req(Method::POST, "/v1/sessions")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 400, "invalid_json");
    assert_error(
        &s.json(Method::POST, "/v1/sessions", json!({"source": {"type": "warp"}}))
            .await,
        400,
        "invalid_json",
    );
    assert_error(
        &s.json(Method::POST, "/v1/sessions", json!({"labels": {"bad key": "v"}}))
            .await,
        422,
        "invalid_argument",
    );
    assert_error(
        &s.call(Method::GET, "/v1/sessions/not-a-session").await,
        404,
        "not_found",
    );
    assert_error(&s.call(Method::GET, "/v1/sessions?limit=0").await, 400, "bad_request");
    assert_error(
        &s.call(Method::GET, "/v1/sessions?state=sleeping").await,
        400,
        "bad_request",
    );
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert!(
        list["sessions"].as_array().unwrap().is_empty(),
        "bad requests created nothing"
    );
}

/// One rule for JSON bodies on every route: not JSON, or JSON of the wrong shape, is 400
/// `invalid_json` (it was 422 on the routes whose body may be empty), and nothing changes.
#[tokio::test]
async fn malformed_json_is_400_invalid_json_on_every_route() {
    let s = server().await;
    let id = s.new_session().await;
    let routes = [
        (Method::POST, "/v1/sessions".to_owned()),
        (Method::PATCH, format!("/v1/sessions/{id}")),
        (Method::POST, format!("/v1/sessions/{id}/fork")),
        (Method::POST, format!("/v1/sessions/{id}/checkpoints")),
        (Method::POST, format!("/v1/sessions/{id}/restore")),
        (Method::POST, format!("/v1/sessions/{id}/commits")),
        (Method::POST, format!("/v1/sessions/{id}/fs/rename")),
        (Method::POST, format!("/v1/sessions/{id}/fs/mkdir")),
        (Method::POST, format!("/v1/sessions/{id}/fs/symlink")),
        (Method::POST, format!("/v1/sessions/{id}/fs/chmod")),
        (Method::POST, "/v1/tokens".to_owned()),
    ];
    for (method, path) in routes {
        for body in ["{not json", r#"{"message": 7, "no_such_field": true}"#, "[1, 2]"] {
            let resp = s
                .req(method.clone(), &path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let got = split(resp).await;
            assert_eq!(got.0, 400, "{method} {path} {body}: {}", got.1);
            assert_eq!(
                got.1["error"]["code"], "invalid_json",
                "{method} {path} {body}: {}",
                got.1
            );
        }
    }
    let (_, cps) = s.call(Method::GET, &format!("/v1/sessions/{id}/checkpoints")).await;
    assert_eq!(cps["checkpoints"].as_array().map(Vec::len), Some(0), "{cps}");
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn bad_paths_are_rejected() {
    let s = server().await;
    let id = s.new_session().await;
    for bad in ["../escape", "a/../../b", "a%00b", "a//b"] {
        let resp = s
            .req(Method::PUT, &format!("/v1/sessions/{id}/files/{bad}"))
            .body("x")
            .send()
            .await
            .unwrap();
        let got = split(resp).await;
        // reqwest normalizes "a/../../b" in the URL itself; whatever arrives must not escape.
        assert!(matches!(got.0, 400 | 404), "{bad}: {got:?}");
    }
    // Sent as-is (no client-side normalization), the way curl --path-as-is does.
    for raw in [
        "%2E%2E/escape",
        "a/../../escape",
        "..%2Fescape",
        "a/%2E%2E/%2E%2E/escape",
    ] {
        let status = raw_status(&s, "PUT", &format!("/v1/sessions/{id}/files/{raw}"), "x").await;
        assert!(matches!(status, 400 | 404), "{raw}: {status}");
    }
    assert_eq!(
        raw_status(&s, "PUT", &format!("/v1/sessions/{id}/files/%2E%2E/escape"), "x").await,
        400
    );
    let nul = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/a%00b"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(&split(nul).await, 400, "invalid_path");
    let (_, tree) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/tree?recursive=true"))
        .await;
    assert!(tree["entries"].as_array().unwrap().is_empty(), "{tree}");
}

#[tokio::test]
async fn limits_give_413_and_write_nothing() {
    let s = server_with(|c| {
        c.max_file_size = 1000;
        c.max_json_body = 200;
        c.max_path_len = 50;
    })
    .await;
    let id = s.new_session().await;
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/big"))
        .body(vec![0u8; 1001])
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 413, "too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..5).map(|_| Ok(vec![1u8; 300])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/big"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 413, "too_large");
    let long = "n/".repeat(30);
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/{long}x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 413, "too_large");
    let labels: serde_json::Map<String, serde_json::Value> = (0..20).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_error(
        &s.json(Method::POST, "/v1/sessions", json!({ "labels": labels })).await,
        413,
        "too_large",
    );
    let (_, tree) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/tree?recursive=true"))
        .await;
    assert!(
        tree["entries"].as_array().unwrap().is_empty(),
        "nothing half-written: {tree}"
    );
}

#[tokio::test]
async fn import_file_count_limit() {
    let s = server_with(|c| c.max_import_files = 3).await;
    let archive = crate::hostile_inputs::many_files_tar(5, true);
    let resp = s
        .req(Method::POST, "/v1/sessions/import")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 413, "too_large");
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert!(list["sessions"].as_array().unwrap().is_empty());
}

fn tar_bytes() -> tar::Builder<Vec<u8>> {
    tar::Builder::new(Vec::new())
}

#[tokio::test]
async fn an_import_whose_gzip_is_corrupt_or_cut_short_is_422_naming_it_and_creates_nothing() {
    use std::io::Write;
    let s = server().await;
    let mut builder = tar_bytes();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    builder.append_data(&mut h, "f.bin", &data[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    let good = gz.finish().unwrap();
    let trailer = good.len() - 8;
    let mut bad_crc = good.clone();
    bad_crc[trailer] ^= 0x40;
    let mut bad_len = good.clone();
    bad_len[trailer + 5] ^= 0x01;
    for (what, body) in [
        ("a wrong CRC", bad_crc),
        ("a wrong length", bad_len),
        ("a stream cut short", good[..good.len() / 2].to_vec()),
    ] {
        let resp = s
            .req(Method::POST, "/v1/sessions/import")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = split(resp).await;
        assert_error(&got, 422, "invalid_argument");
        let message = got.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("gzip"), "{what}: {message}");
    }
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert!(list["sessions"].as_array().unwrap().is_empty(), "nothing was created");
}
