//! Sessions imported from a git repository served over smart HTTP (`git http-backend` behind
//! a loopback test server), through `POST /v1/sessions`.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::common::*;

use aether_test_support::git_http;

/// `git` in `dir` (isolated, as the git serving tests run it); stdout, trimmed.
async fn git(dir: &Path, args: &[&str]) -> String {
    crate::git::git(dir, args).await.trim().to_owned()
}

/// The history fixture as a bare repository under `root/repo.git`; returns the work repo.
async fn fixture(scratch: &Path, root: &Path) -> std::path::PathBuf {
    let src = scratch.join("work");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make_history_repo.sh");
    assert!(Command::new("bash").arg(script).arg(&src).status().unwrap().success());
    std::fs::create_dir_all(root).unwrap();
    git(
        scratch,
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().unwrap(),
            root.join("repo.git").to_str().unwrap(),
        ],
    )
    .await;
    src
}

async fn session_count(s: &Server) -> usize {
    let (status, list) = s.call(Method::GET, "/v1/sessions").await;
    assert_eq!(status, 200);
    list["sessions"].as_array().unwrap().len()
}

#[tokio::test]
async fn import_over_http_then_log_read_and_commit() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("served");
    let src = fixture(scratch.path(), &root).await;
    let remote = git_http::serve(&root);
    let s = server().await;

    let (status, created) = s
        .json(
            Method::POST,
            "/v1/sessions",
            json!({"source": {"type": "git", "url": format!("{}/repo.git", remote.base)}, "labels": {"from": "git"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let head = git(&src, &["rev-parse", "main"]).await;
    assert_eq!(created["head"], head.as_str());
    assert_eq!(created["branch"], "main");

    // The session's log shows the source's commit ids, in git's order.
    let (status, log) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/commits?limit=100"))
        .await;
    assert_eq!(status, 200, "{log}");
    let ours: Vec<&str> = log["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let theirs = git(&src, &["log", "--format=%H", "main"]).await;
    assert_eq!(ours, theirs.lines().collect::<Vec<_>>());

    // Files read through the API equal the source's, the large one included (and chunked).
    for path in ["README.md", "src/main.rs", "build.sh", "assets.bin"] {
        let expected = std::fs::read(src.join(path)).unwrap();
        assert!(s.get(&id, path).await == expected, "{path}");
    }
    let (_, stat) = s.call(Method::GET, &format!("/v1/sessions/{id}/stat/assets.bin")).await;
    assert_eq!(stat["chunked"], true, "{stat}");
    assert_eq!(stat["oid"], git(&src, &["rev-parse", "main:assets.bin"]).await.as_str());

    // A commit in the session has the imported head as its parent.
    s.put(&id, "NEW.txt", b"new\n").await;
    let (status, commit) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/commits"),
            json!({"message": "after import"}),
        )
        .await;
    assert_eq!(status, 201, "{commit}");
    assert_eq!(commit["parents"], json!([head]));
}

#[tokio::test]
async fn failed_imports_answer_with_json_errors_and_leave_no_session() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("served");
    fixture(scratch.path(), &root).await;
    let remote = git_http::serve(&root);
    let s = server().await;
    let before = session_count(&s).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            json!({"type": "git", "url": "ssh://example.com/repo.git"}),
            422,
            "invalid_argument",
        ),
        (
            json!({"type": "git", "url": format!("{}/missing.git", remote.base)}),
            404,
            "not_found",
        ),
        (
            json!({"type": "git", "url": format!("http://127.0.0.1:{port}/repo.git")}),
            502,
            "source_unreachable",
        ),
        (
            json!({"type": "git", "url": format!("{}/repo.git", remote.base), "ref": "no-such-branch"}),
            404,
            "not_found",
        ),
    ];
    for (source, status, code) in cases {
        let got = s.json(Method::POST, "/v1/sessions", json!({"source": source})).await;
        assert_error(&got, status, code);
    }
    assert_eq!(session_count(&s).await, before);
}

#[tokio::test]
async fn import_limits_come_from_the_server_config() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("served");
    fixture(scratch.path(), &root).await;
    let repo = root.join("repo.git");
    let source = json!({"source": {"type": "git", "url": repo.to_str().unwrap()}});
    // The fixture's pack is far over 1000 bytes.
    let s = server_with(|c| c.max_import_bytes = 1000).await;
    let got = s.json(Method::POST, "/v1/sessions", source.clone()).await;
    assert_error(&got, 413, "too_large");
    assert_eq!(session_count(&s).await, 0);
    // No time at all to fetch: the import stops with a timeout.
    let s = server_with(|c| c.import_timeout_secs = 0).await;
    let got = s.json(Method::POST, "/v1/sessions", source.clone()).await;
    assert_error(&got, 504, "source_timeout");
    // The defaults import it.
    let s = server().await;
    let got = s.json(Method::POST, "/v1/sessions", source.clone()).await;
    assert_eq!(got.0, 201, "{}", got.1);
}
