//! A read is one version: REST GETs (whole, `Range`, `HEAD`, `If-Match`) and gRPC `ReadFile`
//! streams racing PUTs of self-describing versions of very different sizes never mix two
//! versions, never announce more bytes than they send, and never hang. Every version's bytes
//! name it, and its git blob id is known in advance, so a torn body, a body under another
//! version's ETag and a short body are each told apart.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_RANGE, RANGE};
use sha1::{Digest, Sha1};
use tokio::sync::Mutex;
use tonic::Code;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;

use crate::common::{Server, server, server_with, split};
use crate::grpc::{Auth, Bearer, channel};

/// Sizes of the versions in turn: small blobs (the server answers from one buffer) and, past the
/// large-file threshold, chunked ones (streamed), several 256 KiB pieces long.
const SIZES: [usize; 5] = [200_000, 4_096, 200_000, 4_096, 1_100_003];
/// Versions written by a race; readers run while they are written.
const VERSIONS: u32 = 120;
/// Longer than any read may take: past it the read counts as hung.
const READ_LIMIT: Duration = Duration::from_secs(20);

/// Version `n`: 32-byte records naming the version, the record's offset and the size.
fn version_bytes(n: u32) -> Vec<u8> {
    let size = SIZES[n as usize % SIZES.len()];
    let mut out = Vec::with_capacity(size + 32);
    while out.len() < size {
        out.extend_from_slice(format!("v{n:07}@{:010}/{size:010}\n", out.len()).as_bytes());
    }
    out.truncate(size);
    out
}

fn blob_id(data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", data.len()).as_bytes());
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every version, and its git blob id to version number.
struct Versions {
    bytes: Vec<Vec<u8>>,
    by_oid: HashMap<String, u32>,
}

impl Versions {
    fn new() -> Versions {
        let bytes: Vec<Vec<u8>> = (0..VERSIONS).map(version_bytes).collect();
        let by_oid = bytes.iter().enumerate().map(|(n, b)| (blob_id(b), n as u32)).collect();
        Versions { bytes, by_oid }
    }

    /// The version an ETag (`"<blob id>"`) names.
    fn of_etag(&self, etag: &str) -> Option<u32> {
        self.by_oid.get(etag.trim_matches('"')).copied()
    }
}

/// What the readers found: failures (each described) and the versions they saw.
#[derive(Default)]
struct Findings {
    failures: Vec<String>,
    seen: BTreeSet<u32>,
    reads: usize,
    stale: usize,
}

impl Findings {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    fn assert_clean(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} reads failed, the first ones:\n{}",
            self.failures.len(),
            self.reads,
            self.failures.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
        );
        // The race must really have happened: reads saw many versions of every size.
        assert!(
            self.seen.len() >= 10,
            "{what}: reads saw only versions {:?}; the race did not happen",
            self.seen
        );
    }
}

/// Write versions 1.. of `f` over REST while `readers` tasks call `read(i)` (i = 0, 1, ..
/// spread over the tasks) until the last version is written.
async fn race<F, Fut>(s: &Server, id: &str, versions: &Versions, readers: usize, read: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (done, read) = (done.clone(), read.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = r as u64;
            while !done.load(Ordering::Relaxed) {
                read(i).await;
                i += readers as u64;
            }
        }));
    }
    for n in 1..VERSIONS {
        s.put(id, "f", &versions.bytes[n as usize]).await;
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_reads_racing_writes_are_each_one_whole_version() {
    let s = server().await;
    let id = s.new_session().await;
    let versions = Arc::new(Versions::new());
    s.put(&id, "f", &versions.bytes[0]).await;
    let url = format!("{}/v1/sessions/{id}/files/f", s.base);
    let client = reqwest::Client::new();
    let findings = Arc::new(Mutex::new(Findings::default()));
    let last_etag = Arc::new(Mutex::new(String::new()));
    let read = {
        let (versions, findings, admin) = (versions.clone(), findings.clone(), s.admin.clone());
        move |i: u64| {
            let (versions, findings, client, url, admin, last_etag) = (
                versions.clone(),
                findings.clone(),
                client.clone(),
                url.clone(),
                admin.clone(),
                last_etag.clone(),
            );
            async move {
                let kind = i % 5;
                let mut req = client.get(&url).bearer_auth(&admin);
                let if_match = last_etag.lock().await.clone();
                match kind {
                    1 => req = req.header(RANGE, format!("bytes={}-{}", 1_000 + i % 3_000, 150_000 + i % 70_000)),
                    2 => req = req.header(RANGE, "bytes=-5000"),
                    3 => req = client.head(&url).bearer_auth(&admin),
                    4 if !if_match.is_empty() => req = req.header(IF_MATCH, &if_match),
                    _ => {}
                }
                let got = tokio::time::timeout(READ_LIMIT, async {
                    let resp = req.send().await?;
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await?;
                    Ok::<_, reqwest::Error>((status, headers, body))
                })
                .await;
                let mut f = findings.lock().await;
                f.reads += 1;
                let (status, headers, body) = match got {
                    Err(_) => return f.failures.push(format!("read {i} (kind {kind}) hung")),
                    Ok(Err(e)) => return f.failures.push(format!("read {i} (kind {kind}) broke: {e}")),
                    Ok(Ok(r)) => r,
                };
                let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let etag = header(ETAG);
                if kind == 4 && status == 412 {
                    f.stale += 1;
                    let err: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    return f.check(err["error"]["code"] == "stale", || {
                        format!("412 without code stale: {err}")
                    });
                }
                let Some(n) = versions.of_etag(&etag) else {
                    return f
                        .failures
                        .push(format!("read {i}: status {status}, ETag {etag:?} names no version"));
                };
                f.seen.insert(n);
                *last_etag.lock().await = etag.clone();
                let version = &versions.bytes[n as usize];
                let length: Option<usize> = header(CONTENT_LENGTH).parse().ok();
                if kind == 3 {
                    return f.check(status == 200 && length == Some(version.len()), || {
                        format!(
                            "HEAD: status {status}, Content-Length {length:?} for version {n} of {} bytes",
                            version.len()
                        )
                    });
                }
                f.check(length == Some(body.len()), || {
                    format!("read {i}: Content-Length {length:?} but {} bytes came", body.len())
                });
                if kind == 4 {
                    f.check(etag == if_match, || format!("If-Match {if_match} answered with {etag}"));
                }
                match status {
                    200 => f.check(body[..] == version[..], || {
                        format!(
                            "read {i}: {} bytes starting {:?} under the ETag of version {n} ({} bytes)",
                            body.len(),
                            String::from_utf8_lossy(&body[..body.len().min(32)]),
                            version.len()
                        )
                    }),
                    206 => {
                        let range = header(CONTENT_RANGE);
                        let parsed = range.strip_prefix("bytes ").and_then(|r| {
                            let (span, total) = r.split_once('/')?;
                            let (a, b) = span.split_once('-')?;
                            Some((
                                a.parse::<usize>().ok()?,
                                b.parse::<usize>().ok()?,
                                total.parse::<usize>().ok()?,
                            ))
                        });
                        let ok = parsed.is_some_and(|(a, b, total)| {
                            total == version.len() && b < total && body.len() == b - a + 1 && body[..] == version[a..=b]
                        });
                        f.check(ok, || {
                            format!(
                                "range read {i}: Content-Range {range:?}, {} bytes, not a slice of version {n} ({} bytes)",
                                body.len(),
                                version.len()
                            )
                        })
                    }
                    other => f.failures.push(format!("read {i} (kind {kind}): status {other}")),
                }
            }
        }
    };
    race(&s, &id, &versions, 4, read).await;
    let f = findings.lock().await;
    eprintln!(
        "REST race: {} reads, {} versions seen, {} stale If-Match",
        f.reads,
        f.seen.len(),
        f.stale
    );
    f.assert_clean("REST reads racing PUTs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_reads_racing_writes_are_each_one_whole_version() {
    let s = server().await;
    let id = s.new_session().await;
    let versions = Arc::new(Versions::new());
    s.put(&id, "f", &versions.bytes[0]).await;
    let files = FileServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())))
        .max_decoding_message_size(16 << 20);
    let findings = Arc::new(Mutex::new(Findings::default()));
    let last_oid = Arc::new(Mutex::new(String::new()));
    let read = {
        let (versions, findings, id) = (versions.clone(), findings.clone(), id.clone());
        move |i: u64| {
            let (versions, findings, mut files, id, last_oid) = (
                versions.clone(),
                findings.clone(),
                files.clone(),
                id.clone(),
                last_oid.clone(),
            );
            async move {
                let kind = i % 3;
                let last = last_oid.lock().await.clone();
                let named = (kind == 2 && !last.is_empty()).then_some(last);
                let req = pb::ReadFileRequest {
                    session: id,
                    path: "f".into(),
                    offset: if kind == 1 { 1_000 + i % 3_000 } else { 0 },
                    length: (kind == 1).then_some(150_000 + i % 700_000),
                    content_id: named.clone(),
                    ..Default::default()
                };
                let (offset, length) = (req.offset as usize, req.length);
                let got = tokio::time::timeout(READ_LIMIT, read_stream(&mut files, req)).await;
                let mut f = findings.lock().await;
                f.reads += 1;
                let (stat, pieces) = match got {
                    Err(_) => return f.failures.push(format!("read {i} (kind {kind}) hung")),
                    Ok(Err(s)) if named.is_some() && s.code() == Code::FailedPrecondition => {
                        f.stale += 1;
                        let code = s
                            .metadata()
                            .get("aether-code")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        return f.check(code == "stale", || {
                            format!("stale read without aether-code stale: {s:?}")
                        });
                    }
                    Ok(Err(s)) => return f.failures.push(format!("read {i} (kind {kind}) failed: {s:?}")),
                    Ok(Ok(r)) => r,
                };
                let oid = stat.as_ref().and_then(|s| s.oid.clone()).unwrap_or_default();
                let Some(n) = versions.of_etag(&oid) else {
                    return f
                        .failures
                        .push(format!("read {i}: the first message names {oid:?}, no version"));
                };
                f.seen.insert(n);
                *last_oid.lock().await = oid.clone();
                let version = &versions.bytes[n as usize];
                if let Some(named) = &named {
                    f.check(oid == *named, || format!("content_id {named} answered with {oid}"));
                }
                let size = stat.map(|s| s.size).unwrap_or_default();
                f.check(size == version.len() as u64, || {
                    format!("stat size {size}, version {n} has {}", version.len())
                });
                let end = length.map_or(version.len(), |l| (offset + l as usize).min(version.len()));
                let mut at = offset;
                for (o, data) in &pieces {
                    let ok = *o as usize == at && version.get(at..at + data.len()) == Some(&data[..]);
                    f.check(ok, || {
                        format!(
                            "read {i}: a message at {o} of {} bytes starting {:?} is not version {n}'s ({} bytes)",
                            data.len(),
                            String::from_utf8_lossy(&data[..data.len().min(32)]),
                            version.len()
                        )
                    });
                    at += data.len();
                }
                f.check(at == end, || {
                    format!("read {i}: the stream ended at {at}, version {n} at {end}")
                });
            }
        }
    };
    race(&s, &id, &versions, 4, read).await;
    let f = findings.lock().await;
    eprintln!(
        "gRPC race: {} reads, {} versions seen, {} stale content ids",
        f.reads,
        f.seen.len(),
        f.stale
    );
    f.assert_clean("gRPC ReadFile racing PUTs");
}

/// A whole ReadFile stream: the first message's stat and every (offset, data).
async fn read_stream(
    files: &mut FileServiceClient<Auth>,
    req: pb::ReadFileRequest,
) -> Result<(Option<pb::Stat>, Vec<(u64, Vec<u8>)>), tonic::Status> {
    let mut stream = files.read_file(req).await?.into_inner();
    let mut stat = None;
    let mut pieces = Vec::new();
    let mut first = true;
    while let Some(m) = stream.message().await? {
        if first {
            stat = m.stat;
            first = false;
        } else if m.stat.is_some() {
            return Err(tonic::Status::internal("a stat after the first message"));
        }
        pieces.push((m.offset, m.data));
    }
    Ok((stat, pieces))
}

#[tokio::test]
async fn a_read_naming_other_content_is_stale_on_both_surfaces() {
    let s = server().await;
    let id = s.new_session().await;
    let old = s.put(&id, "f", b"old").await["oid"].as_str().unwrap().to_owned();
    let new = s.put(&id, "f", b"new!").await["oid"].as_str().unwrap().to_owned();
    let url = format!("/v1/sessions/{id}/files/f");

    let stale = s
        .req(Method::GET, &url)
        .header(IF_MATCH, format!("\"{old}\""))
        .send()
        .await
        .unwrap();
    crate::common::assert_error(&split(stale).await, 412, "stale");
    let resp = s
        .req(Method::GET, &url)
        .header(IF_MATCH, format!("\"{new}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"new!");
    // A list, `*` and a weak tag (If-Match compares strongly: a weak tag never matches).
    let listed = format!("\"{old}\", \"{new}\"");
    let resp = s.req(Method::GET, &url).header(IF_MATCH, &listed).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.req(Method::HEAD, &url).header(IF_MATCH, "*").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let weak = s
        .req(Method::GET, &url)
        .header(IF_MATCH, format!("W/\"{new}\""))
        .send()
        .await
        .unwrap();
    crate::common::assert_error(&split(weak).await, 412, "stale");
    let unknown = s
        .req(Method::GET, &url)
        .header(IF_MATCH, "\"abc\"")
        .send()
        .await
        .unwrap();
    crate::common::assert_error(&split(unknown).await, 412, "stale");
    // If-Range with another version's tag: the whole current content, not a slice of it.
    let resp = s
        .req(Method::GET, &url)
        .header(RANGE, "bytes=1-2")
        .header(IF_RANGE, format!("\"{old}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"new!");
    let resp = s
        .req(Method::GET, &url)
        .header(RANGE, "bytes=1-2")
        .header(IF_RANGE, format!("\"{new}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()[ETAG], format!("\"{new}\"").as_str());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"ew");

    let mut files = FileServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())));
    let req = |content_id: &str, path: &str| pb::ReadFileRequest {
        session: id.clone(),
        path: path.into(),
        content_id: Some(content_id.to_owned()),
        ..Default::default()
    };
    let err = read_stream(&mut files, req(&old, "f")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(err.metadata().get("aether-code").unwrap(), "stale");
    assert!(
        err.message().contains(&old) && err.message().contains(&new),
        "{}",
        err.message()
    );
    let (stat, pieces) = read_stream(&mut files, req(&new, "f")).await.unwrap();
    assert_eq!(stat.unwrap().oid.as_deref(), Some(new.as_str()));
    assert_eq!(pieces, [(0, b"new!".to_vec())]);
    s.call(Method::DELETE, &url).await;
    let gone = read_stream(&mut files, req(&new, "f")).await.unwrap_err();
    assert_eq!(gone.metadata().get("aether-code").unwrap(), "stale");
    let bad = read_stream(&mut files, req("nope", "f")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

/// A chunk that fails its check in the middle of a file: the transfer breaks on both surfaces
/// (never a short body taken for the whole file), and nothing hangs.
#[tokio::test]
async fn a_read_failing_mid_stream_is_a_broken_transfer() {
    let s = server_with(|c| c.large_file_threshold = 64 * 1024).await;
    let id = s.new_session().await;
    let data = version_bytes(4); // 1.1 MB of text: many chunks
    s.put(&id, "big", &data).await;
    flip_a_middle_chunk(&s.data_dir().join("chunks/packs"));

    let resp = tokio::time::timeout(READ_LIMIT, async {
        let resp = s
            .req(Method::GET, &format!("/v1/sessions/{id}/files/big"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the failure comes after the headers");
        assert_eq!(resp.headers()[CONTENT_LENGTH], data.len().to_string().as_str());
        resp.bytes().await
    })
    .await
    .expect("the broken response ends");
    assert!(
        resp.is_err(),
        "a body missing bytes must not end as if complete: {:?}",
        resp.map(|b| b.len())
    );

    let mut files = FileServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())))
        .max_decoding_message_size(16 << 20);
    let req = pb::ReadFileRequest {
        session: id.clone(),
        path: "big".into(),
        ..Default::default()
    };
    let got = tokio::time::timeout(READ_LIMIT, read_stream(&mut files, req))
        .await
        .expect("the broken stream ends");
    let err = got.expect_err("a stream missing bytes must end with an error");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
}

/// Flip the first data byte of a chunk record in the middle of the one pack file in `dir`
/// (records: `len: u32 LE | blake3: [u8; 32] | data`, after an 8-byte magic).
fn flip_a_middle_chunk(dir: &std::path::Path) {
    let pack = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "chunks"))
        .expect("a chunk pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    let mut records = Vec::new();
    let mut at = 8;
    while at + 36 <= bytes.len() {
        records.push(at + 36);
        at += 36 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    assert!(
        records.len() >= 4,
        "the file is several chunks ({} records)",
        records.len()
    );
    let victim = records[records.len() / 2];
    bytes[victim] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
}
