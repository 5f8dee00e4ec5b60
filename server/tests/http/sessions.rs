use reqwest::Method;
use serde_json::json;

use crate::common::*;

/// Pin a JSON shape with ids, hashes and times redacted.
macro_rules! shape {
    ($value:expr, @$snapshot:literal) => {
        insta::assert_json_snapshot!($value, {
            ".id" => "[id]", ".**.id" => "[id]", ".base_tree" => "[oid]",
            ".created_at" => "[time]", ".updated_at" => "[time]", ".**.created_at" => "[time]", ".mtime_ns" => "[time]",
            ".**.mtime_ns" => "[time]", ".commit" => "[oid]", ".tree" => "[oid]", ".ref" => "[ref]",
            ".**.commit" => "[oid]", ".**.tree" => "[oid]", ".restored_commit" => "[oid]", ".parents" => "[parents]",
            ".author.time" => "[time]", ".committer.time" => "[time]", ".sessions" => "[ids]", ".token" => "[secret]",
        }, @$snapshot)
    };
}

#[tokio::test]
async fn create_list_show_update_archive_delete() {
    let s = server().await;
    let (status, created) = s
        .json(
            Method::POST,
            "/v1/sessions",
            json!({"source": {"type": "empty"}, "labels": {"team": "a"}, "tags": ["ci"]}),
        )
        .await;
    assert_eq!(status, 201);
    shape!(created, @r#"
    {
      "base_tree": "[oid]",
      "branch": "main",
      "checkpoints": 0,
      "created_at": "[time]",
      "head": null,
      "id": "[id]",
      "labels": {
        "team": "a"
      },
      "parent": null,
      "quota": {
        "bytes": null,
        "files": null
      },
      "retention": {
        "keep_days": null,
        "keep_last": null
      },
      "state": "active",
      "tags": [
        "ci"
      ],
      "updated_at": "[time]"
    }
    "#);
    let id = created["id"].as_str().unwrap();
    let other = s.new_session().await;

    let (status, list) = s.call(Method::GET, "/v1/sessions?label=team=a").await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list["sessions"][0]["id"], id);
    let (_, page1) = s.call(Method::GET, "/v1/sessions?limit=1").await;
    let next = page1["next"].as_str().unwrap();
    let (_, page2) = s.call(Method::GET, &format!("/v1/sessions?limit=1&after={next}")).await;
    assert_eq!(page2["sessions"][0]["id"], other);

    let (status, updated) = s
        .json(
            Method::PATCH,
            &format!("/v1/sessions/{id}"),
            json!({"labels": {"team": null, "x": "y"}, "tags": []}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["labels"], json!({"x": "y"}));
    assert_eq!(updated["tags"], json!([]));

    let (status, archived) = s.call(Method::POST, &format!("/v1/sessions/{id}/archive")).await;
    assert_eq!((status, archived["state"].as_str()), (200, Some("archived")));
    let resp = s
        .req(Method::PUT, &format!("/v1/sessions/{id}/files/x"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 409, "read_only");
    let (_, archived_list) = s.call(Method::GET, "/v1/sessions?state=archived").await;
    assert_eq!(archived_list["sessions"].as_array().unwrap().len(), 1);

    let (status, _) = s.call(Method::DELETE, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 204);
    assert_error(
        &s.call(Method::GET, &format!("/v1/sessions/{id}")).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn fork_checkpoint_restore_commit_and_log() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "f.txt", b"v1").await;
    let (status, cp) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/checkpoints"),
            json!({"message": "first"}),
        )
        .await;
    assert_eq!(status, 201);
    shape!(cp, @r#"
    {
      "commit": "[oid]",
      "created_at": "[time]",
      "message": "first",
      "number": 1,
      "ref": "[ref]",
      "tree": "[oid]"
    }
    "#);
    s.put(&id, "f.txt", b"v2").await;
    // Read at the checkpoint.
    let old = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/f.txt?at=checkpoints/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.bytes().await.unwrap().as_ref(), b"v1");

    // Fork with an empty body: the current state.
    let (status, fork) = s.call(Method::POST, &format!("/v1/sessions/{id}/fork")).await;
    assert_eq!(status, 201, "{fork}");
    let child = fork["id"].as_str().unwrap();
    assert_eq!(fork["parent"], id);
    assert_eq!(s.get(child, "f.txt").await, b"v2");
    let (status, at_cp) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/fork"),
            json!({"at": "checkpoints/1"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(s.get(at_cp["id"].as_str().unwrap(), "f.txt").await, b"v1");

    let (status, restored) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/restore"),
            json!({"rev": "checkpoints/1"}),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["saved"]["number"], 2);
    assert_eq!(s.get(&id, "f.txt").await, b"v1");
    let (_, cps) = s.call(Method::GET, &format!("/v1/sessions/{id}/checkpoints")).await;
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 2);

    s.put(&id, "g.txt", b"new").await;
    let (status, commit) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/commits"),
            json!({"message": "add f", "author": {"name": "Ada", "email": "ada@example.com"}}),
        )
        .await;
    assert_eq!(status, 201, "{commit}");
    let oid = commit["id"].as_str().unwrap();
    let (_, shown) = s.call(Method::GET, &format!("/v1/sessions/{id}/commits/{oid}")).await;
    shape!(shown, @r#"
    {
      "author": {
        "email": "ada@example.com",
        "name": "Ada",
        "time": "[time]"
      },
      "changes": [
        {
          "change": "added",
          "path": "g.txt"
        }
      ],
      "committer": {
        "email": "aether@localhost",
        "name": "AetherFS",
        "time": "[time]"
      },
      "id": "[id]",
      "message": "add f",
      "parents": "[parents]",
      "tree": "[oid]"
    }
    "#);
    let (_, log) = s.call(Method::GET, &format!("/v1/sessions/{id}/commits?limit=2")).await;
    assert_eq!(log["commits"][0]["id"], oid);
    assert_eq!(log["commits"].as_array().unwrap().len(), 2);
    assert_error(
        &s.call(Method::GET, &format!("/v1/sessions/{id}/commits/{}", "0".repeat(40)))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.json(
            Method::POST,
            &format!("/v1/sessions/{id}/restore"),
            json!({"rev": "checkpoints/99"}),
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_commits_changes_come_in_pages_each_exactly_once() {
    let s = server().await;
    let id = s.new_session().await;
    let names = ["a/x", "a/y", "b", "c/d/e", "c/f", "g"];
    for n in names {
        s.put(&id, n, b"1").await;
    }
    let (status, commit) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/commits"),
            json!({"message": "six"}),
        )
        .await;
    assert_eq!(status, 201, "{commit}");
    let oid = commit["id"].as_str().unwrap();
    let (_, whole) = s.call(Method::GET, &format!("/v1/sessions/{id}/commits/{oid}")).await;
    let whole: Vec<String> = whole["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(whole, names);
    let mut paged = Vec::new();
    let mut url = format!("/v1/sessions/{id}/commits/{oid}?limit=2");
    loop {
        let (status, page) = s.call(Method::GET, &url).await;
        assert_eq!(status, 200, "{page}");
        let changes = page["changes"].as_array().unwrap();
        assert!(changes.len() <= 2);
        paged.extend(changes.iter().map(|c| c["path"].as_str().unwrap().to_owned()));
        let Some(next) = page["changes_next"].as_str() else {
            break;
        };
        assert_eq!(changes.len(), 2, "only a full page has a next");
        url = format!(
            "/v1/sessions/{id}/commits/{oid}?limit=2&after={}",
            next.replace('/', "%2F")
        );
    }
    assert_eq!(paged, whole);
    for bad in ["limit=0", "limit=1001", "after="] {
        assert_error(
            &s.call(Method::GET, &format!("/v1/sessions/{id}/commits/{oid}?{bad}"))
                .await,
            400,
            "bad_request",
        );
    }
}

#[tokio::test]
async fn tar_import_export_round_trip() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "bin/run.sh", b"#!/bin/sh\necho hi\n").await;
    s.put(&id, "docs/readme.md", b"# hi\n").await;
    s.json(
        Method::POST,
        &format!("/v1/sessions/{id}/fs/chmod"),
        json!({"path": "bin/run.sh", "mode": "755"}),
    )
    .await;
    s.json(
        Method::POST,
        &format!("/v1/sessions/{id}/fs/mkdir"),
        json!({"path": "empty"}),
    )
    .await;
    s.json(
        Method::POST,
        &format!("/v1/sessions/{id}/fs/symlink"),
        json!({"path": "link", "target": "docs/readme.md"}),
    )
    .await;
    for format in ["tar", "tar.gz"] {
        let resp = s
            .req(Method::GET, &format!("/v1/sessions/{id}/export?format={format}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let archive = resp.bytes().await.unwrap();
        let resp = s
            .req(Method::POST, "/v1/sessions/import?label=from=tar")
            .body(archive.to_vec())
            .send()
            .await
            .unwrap();
        let (status, imported) = split(resp).await;
        assert_eq!(status, 201, "{imported}");
        assert_eq!(imported["labels"]["from"], "tar");
        let new = imported["id"].as_str().unwrap();
        let (_, a) = s
            .call(Method::GET, &format!("/v1/sessions/{id}/tree?recursive=true"))
            .await;
        let (_, b) = s
            .call(Method::GET, &format!("/v1/sessions/{new}/tree?recursive=true"))
            .await;
        let strip = |v: &serde_json::Value| {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["path"].clone(),
                        e["kind"].clone(),
                        e["mode"].clone(),
                        e["oid"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a), strip(&b), "{format}: same files, kinds, modes and contents");
    }
    let resp = s
        .req(Method::POST, "/v1/sessions/import")
        .body("this is not a tar archive at all".repeat(40))
        .send()
        .await
        .unwrap();
    let got = split(resp).await;
    assert!(got.0 == 422 || got.0 == 400, "{got:?}");
    let (_, all) = s.call(Method::GET, "/v1/sessions").await;
    assert_eq!(
        all["sessions"].as_array().unwrap().len(),
        3,
        "a failed import leaves no session"
    );
}
