//! Garbage collection over HTTP and as `aetherd gc` (issue 25): the admin route reports and
//! reclaims, the offline command refuses a directory a server uses, a server killed with
//! SIGKILL in the middle of a collection loses no acknowledged write, and loose objects are
//! packed in the background.

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::admission::start;
use crate::common::split;
use crate::git::noise;
use crate::hostile::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_reports_reclaims_and_is_admin_only() {
    let s = start(|c| {
        c.gc.grace = Duration::ZERO;
        c.gc.interval = None;
    })
    .await;
    let keep = s.new_session().await;
    assert_eq!(s.put(&keep, "kept.bin", noise(2 << 20, 1)).await.0, 200);
    let stored = || async {
        let u = s.engine.disk_usage().await.unwrap();
        u.objects + u.chunks
    };
    let before = stored().await;
    let doomed = s.new_session().await;
    assert_eq!(s.put(&doomed, "big.bin", noise(3 << 20, 2)).await.0, 200);
    for i in 0..50 {
        assert_eq!(s.put(&doomed, &format!("s/{i}"), noise(4000, 2 * i + 101)).await.0, 200);
    }
    let unique = stored().await - before;
    let resp = s
        .req(Method::DELETE, &format!("/v1/sessions/{doomed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let gc = |body: Value| s.req(Method::POST, "/v1/admin/gc").json(&body).send();
    let (status, dry) = split(gc(json!({"dry_run": true})).await.unwrap()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["loose_objects_removed"].as_u64().unwrap() >= 50, "{dry}");
    assert!(dry["manifests_removed"].as_u64().unwrap() >= 1, "{dry}");
    let (status, report) = split(gc(json!({})).await.unwrap()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["loose_objects_removed"], dry["loose_objects_removed"],
        "{report}"
    );
    let reclaimed = before + unique - stored().await;
    assert!(
        reclaimed * 100 >= unique * 95,
        "reclaimed {reclaimed} of {unique}: {report}"
    );
    let resp = s
        .req(Method::GET, &format!("/v1/sessions/{keep}/files/kept.bin"))
        .send()
        .await
        .unwrap();
    assert!(resp.bytes().await.unwrap() == noise(2 << 20, 1), "a live file changed");

    // Bad input changes nothing; a scoped token may not collect.
    let (status, body) = split(gc(json!({"dry": true})).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    let resp = s
        .req(Method::POST, "/v1/tokens")
        .json(&json!({"sessions": [keep], "access": "write"}))
        .send()
        .await
        .unwrap();
    let (_, token) = split(resp).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/admin/gc", s.base))
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(resp).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
}

fn aetherd_gc(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aetherd"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("AETHER_DATA_DIR")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aetherd_gc_refuses_a_directory_a_server_uses_and_collects_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start_with(&data, &["--gc-interval-secs", "0"]);
    let keep = d.new_session(json!({"type": "empty"})).await;
    d.put(&keep, "kept.txt", "kept").await;
    let doomed = d.new_session(json!({"type": "empty"})).await;
    for i in 0..20 {
        d.put(&doomed, &format!("f{i}"), &format!("doomed {i}")).await;
    }
    let (status, _) = d.call(Method::DELETE, &format!("/v1/sessions/{doomed}"), None).await;
    assert_eq!(status, 204);

    let out = aetherd_gc(&data, &["gc", "--dry-run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another aetherd is using the data directory"), "{err}");

    d.stop();
    let out = aetherd_gc(&data, &["--gc-grace-secs", "0", "gc"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["loose_objects_removed"].as_u64().unwrap() >= 20, "{report}");

    let d = Daemon::start(&data);
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/sessions/{keep}/files/kept.txt", d.base))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "kept");
}

/// Loose objects in the data directory's object database.
fn loose_objects(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("objects.git/objects"))
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().len() == 2)
        .map(|f| std::fs::read_dir(f.path()).unwrap().count())
        .sum()
}

/// With packing checks every second from one loose object, what writes leave loose is packed
/// by the server on its own, and every file reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_packs_loose_objects_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start_with(
        &data,
        &[
            "--gc-interval-secs",
            "0",
            "--pack-interval-secs",
            "1",
            "--pack-loose-objects",
            "1",
        ],
    );
    let id = d.new_session(json!({"type": "empty"})).await;
    for i in 0..300 {
        d.put(&id, &format!("d{}/f{i}", i % 7), &format!("file {i}")).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while loose_objects(&data) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} loose objects left",
            loose_objects(&data)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let packs = std::fs::read_dir(data.join("objects.git/objects/pack"))
        .unwrap()
        .count();
    assert!(packs >= 2, "a pack and its index");
    for i in 0..300 {
        let (status, body) = d
            .call(Method::GET, &format!("/v1/sessions/{id}/files/d{}/f{i}", i % 7), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(body, Value::String(format!("file {i}")), "f{i}");
    }
}

/// A server killed with SIGKILL while it collects loses nothing it acknowledged: every write
/// answered 200 before the kill reads back after a restart, and a full collection then finds
/// the object database whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_collection_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--gc-interval-secs", "0", "--gc-grace-secs", "0"];
    let mut acked: Vec<(String, String, String)> = Vec::new();
    let mut killed_mid_collection = false;
    for round in 0..4u64 {
        let d = Daemon::start_with(&data, &args);
        let keep = d.new_session(json!({"type": "empty"})).await;
        // Garbage for the collection to chew on: sessions of small files, then deleted.
        for s in 0..4u64 {
            let doomed = d.new_session(json!({"type": "empty"})).await;
            for i in 0..400u64 {
                d.put(&doomed, &format!("g/{i}"), &format!("garbage {round} {s} {i}"))
                    .await;
            }
            let (status, _) = d.call(Method::DELETE, &format!("/v1/sessions/{doomed}"), None).await;
            assert_eq!(status, 204);
        }
        let client = reqwest::Client::new();
        let gc = tokio::spawn({
            let (client, base, token) = (client.clone(), d.base.clone(), d.token.clone());
            async move {
                client
                    .post(format!("{base}/v1/admin/gc"))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
            }
        });
        // Writes while it runs, some reusing the garbage's contents; the kill lands among them.
        for i in 0..2000u64 {
            let (path, body) = (format!("w/{round}/{i}"), format!("garbage {round} 1 {i}"));
            let sent = client
                .put(format!("{}/v1/sessions/{keep}/files/{path}", d.base))
                .bearer_auth(&d.token)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == 200 => acked.push((keep.clone(), path, body)),
                _ => break,
            }
            if i == 3 {
                let _ = Command::new("kill").args(["-KILL", &d.pid().to_string()]).status();
            }
        }
        let finished = matches!(gc.await.unwrap(), Ok(ref r) if r.status() == 200);
        drop(d);
        if !finished {
            killed_mid_collection = true;
            break;
        }
    }
    assert!(killed_mid_collection, "the collection always finished before the kill");

    let d = Daemon::start_with(&data, &args);
    let check = || async {
        for (id, path, body) in &acked {
            let resp = reqwest::Client::new()
                .get(format!("{}/v1/sessions/{id}/files/{path}", d.base))
                .bearer_auth(&d.token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{path} acknowledged before the kill");
            assert_eq!(resp.text().await.unwrap(), *body, "{path}");
        }
    };
    check().await;
    let (status, report) = d.call(Method::POST, "/v1/admin/gc", Some(json!({}))).await;
    assert_eq!(status, 200, "{report}");
    check().await;
    // Collections pack: what a killed one was writing is gone, and every pack has its index.
    let packs: Vec<String> = std::fs::read_dir(data.join("objects.git/objects/pack"))
        .unwrap()
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        packs.iter().all(|f| f.ends_with(".idx") || f.ends_with(".pack")),
        "{packs:?}"
    );
    let (idx, pack) = (
        packs.iter().filter(|f| f.ends_with(".idx")).count(),
        packs.iter().filter(|f| f.ends_with(".pack")).count(),
    );
    assert!(idx == pack && idx >= 1, "{packs:?}");
    assert_eq!(loose_objects(&data), 0, "a collection packs what it keeps: {report}");
    let fsck = Command::new("git")
        .args(["fsck", "--full", "--no-dangling", "--no-progress"])
        .current_dir(data.join("objects.git"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("notice: "))
        .collect();
    assert!(fsck.status.success() && problems.is_empty(), "git fsck: {text}");
}
