//! Every error response is `{"error":{"code","message"}}` with a JSON content type, also the
//! ones no handler writes: a URI hyper refuses (414), a path that is not UTF-8, a body over the
//! JSON limit read as bytes.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Send `head` (and `body`) as they are; returns status, content type and the parsed body.
async fn raw(s: &Server, head: &str, body: &[u8]) -> (u16, String, Value) {
    let addr = s.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and stop reading) before a body over a limit is all sent.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type").then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, ctype, json)
}

fn request(s: &Server, method: &str, target: &str, len: usize) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        s.admin
    )
}

fn assert_json_error(got: &(u16, String, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{got:?}");
    assert_eq!(got.1, "application/json", "{got:?}");
    assert_error(&(got.0, got.2.clone()), status, code);
}

#[tokio::test]
async fn errors_that_no_handler_writes_are_json_too() {
    let s = server().await;
    let id = s.new_session().await;
    // A URI over what HTTP/1 parsing takes: hyper answers by itself.
    let long = format!("/v1/sessions/{id}/files/{}", "a".repeat(70_000));
    assert_json_error(&raw(&s, &request(&s, "GET", &long, 0), b"").await, 414, "uri_too_long");
    // A path segment that is not UTF-8 once percent-decoded.
    let not_utf8 = raw(&s, &request(&s, "GET", "/v1/sessions/%FF%FE/files/x", 0), b"").await;
    assert_json_error(&not_utf8, 400, "bad_request");
    let not_utf8_file = raw(
        &s,
        &request(&s, "GET", &format!("/v1/sessions/{id}/files/%C3%28"), 0),
        b"",
    )
    .await;
    assert_json_error(&not_utf8_file, 400, "bad_request");
    // JSON bodies over the limit, on routes that read their body as bytes and as JSON.
    let big = format!("{{\"message\": \"{}\"}}", "m".repeat((1 << 20) + 100));
    for target in [
        format!("/v1/sessions/{id}/fork"),
        format!("/v1/sessions/{id}/checkpoints"),
        format!("/v1/sessions/{id}/commits"),
        "/v1/sessions".to_owned(),
    ] {
        let got = raw(&s, &request(&s, "POST", &target, big.len()), big.as_bytes()).await;
        assert_json_error(&got, 413, "too_large");
    }
    // A header that cannot be parsed.
    let bad_header = raw(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"").await;
    assert_json_error(&bad_header, 400, "bad_request");
    // The session is unchanged: no fork, no checkpoint.
    let (_, list) = s.call(reqwest::Method::GET, "/v1/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
}
