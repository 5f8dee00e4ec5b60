//! Reads at a revision show what the session held that git cannot: empty directories (among
//! them a real repository's `.git/refs/heads`, empty once git packed its refs) and modes such as
//! 600, 444 and 700, at a checkpoint, at a commit on the session's branch and at a commit id,
//! through every read: REST listing, stat, bytes and export, gRPC ListTree, Stat and ReadFile.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::Method;
use serde_json::json;

use aether_proto::v1 as pb;
use pb::file_service_client::FileServiceClient;

use crate::common::{Server, server};
use crate::grpc::{Bearer, channel};

/// A node as every read should show it: kind, permission bits, and a file's bytes or a link's
/// target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    bytes: Option<Vec<u8>>,
}

/// The real git, isolated from the machine's configuration; fails the test when missing.
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "gc.auto=0"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git must be installed to run these tests");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory holding a git repository whose refs are packed (`.git/refs/heads` and
/// `.git/refs/tags` are empty), an empty nested directory, files of modes 600, 444 and 700, a
/// directory of mode 700 and a symlink.
fn make_tree(root: &Path) {
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    std::fs::write(repo.join("src/lib.rs"), "pub fn one() -> u32 { 1 }\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(&repo, &["gc", "-q"]);
    assert_eq!(std::fs::read_dir(repo.join(".git/refs/heads")).unwrap().count(), 0);
    std::fs::create_dir_all(root.join("empty/nested/deep")).unwrap();
    std::fs::write(root.join("secret"), "s").unwrap();
    chmod(&root.join("secret"), 0o600);
    std::fs::write(root.join("ro"), "r").unwrap();
    chmod(&root.join("ro"), 0o444);
    std::fs::write(root.join("tool"), "#!/bin/sh\n").unwrap();
    chmod(&root.join("tool"), 0o700);
    std::fs::create_dir(root.join("private")).unwrap();
    std::fs::write(root.join("private/key"), "k").unwrap();
    chmod(&root.join("private"), 0o700);
    std::os::unix::fs::symlink("secret", root.join("link")).unwrap();
}

/// Every entry below `root` by relative path.
fn local_tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let node = if m.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                Node {
                    kind: "symlink",
                    mode: 0o777,
                    bytes: Some(target.to_str().unwrap().as_bytes().to_vec()),
                }
            } else if m.is_dir() {
                stack.push(path.clone());
                Node {
                    kind: "dir",
                    mode: m.permissions().mode() & 0o7777,
                    bytes: None,
                }
            } else {
                Node {
                    kind: "file",
                    mode: m.permissions().mode() & 0o7777,
                    bytes: Some(std::fs::read(&path).unwrap()),
                }
            };
            out.insert(rel, node);
        }
    }
    out
}

/// Put `tree` in session `id` with REST calls: directories (with their modes), files with
/// their modes, symlinks.
async fn upload(s: &Server, id: &str, tree: &BTreeMap<String, Node>) {
    for (path, node) in tree {
        let (status, body) = match node.kind {
            "dir" => {
                let made = s
                    .json(
                        Method::POST,
                        &format!("/v1/sessions/{id}/fs/mkdir"),
                        json!({"path": path, "parents": true}),
                    )
                    .await;
                assert_eq!(made.0, 200, "mkdir {path}: {}", made.1);
                let mode = format!("{:o}", node.mode);
                s.json(
                    Method::POST,
                    &format!("/v1/sessions/{id}/fs/chmod"),
                    json!({"path": path, "mode": mode}),
                )
                .await
            }
            "file" => {
                let resp = s
                    .req(
                        Method::PUT,
                        &format!("/v1/sessions/{id}/files/{path}?mode={:o}", node.mode),
                    )
                    .body(node.bytes.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
                crate::common::split(resp).await
            }
            _ => {
                let target = String::from_utf8(node.bytes.clone().unwrap()).unwrap();
                s.json(
                    Method::POST,
                    &format!("/v1/sessions/{id}/fs/symlink"),
                    json!({"path": path, "target": target}),
                )
                .await
            }
        };
        assert_eq!(status, 200, "{path}: {body}");
    }
}

/// Kind and mode of every entry, the shape listings and archives must show.
fn shape(tree: &BTreeMap<String, Node>) -> BTreeMap<String, (&'static str, u32)> {
    tree.iter().map(|(p, n)| (p.clone(), (n.kind, n.mode))).collect()
}

fn kind_of(k: &str) -> &'static str {
    match k {
        "dir" => "dir",
        "file" => "file",
        "symlink" => "symlink",
        other => panic!("unknown kind {other}"),
    }
}

#[tokio::test]
async fn reads_at_a_checkpoint_or_a_commit_keep_empty_directories_and_modes() {
    let local = tempfile::tempdir().unwrap();
    make_tree(local.path());
    let tree = local_tree(local.path());
    for dir in ["repo/.git/refs/heads", "repo/.git/refs/tags", "empty/nested/deep"] {
        assert_eq!(tree[dir].kind, "dir", "{dir}");
    }
    let s = server().await;
    let id = s.new_session().await;
    upload(&s, &id, &tree).await;
    let (status, cp) = s
        .json(Method::POST, &format!("/v1/sessions/{id}/checkpoints"), json!({}))
        .await;
    assert_eq!(status, 201, "{cp}");
    let (status, commit) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/commits"),
            json!({"message": "posix"}),
        )
        .await;
    assert!(status == 200 || status == 201, "{commit}");
    let commit_id = commit["id"].as_str().unwrap().to_owned();

    // The live session loses what the revisions must keep.
    for path in ["empty", "repo/.git/refs/heads", "repo/.git/refs/tags"] {
        let resp = s
            .req(
                Method::DELETE,
                &format!("/v1/sessions/{id}/files/{path}?recursive=true"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "delete {path}");
    }
    for (path, mode) in [("secret", "644"), ("private", "755"), ("ro", "644"), ("tool", "755")] {
        let r = s
            .json(
                Method::POST,
                &format!("/v1/sessions/{id}/fs/chmod"),
                json!({"path": path, "mode": mode}),
            )
            .await;
        assert_eq!(r.0, 200, "{}", r.1);
    }

    let mut grpc = FileServiceClient::with_interceptor(channel(&s).await, Bearer(Some(s.admin.clone())));
    for at in ["checkpoints/1", "heads/main", commit_id.as_str()] {
        // REST listing.
        let (status, listing) = s
            .call(Method::GET, &format!("/v1/sessions/{id}/tree?recursive=true&at={at}"))
            .await;
        assert_eq!(status, 200, "{listing}");
        let got: BTreeMap<String, (&'static str, u32)> = listing["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mode = e["mode"].as_u64().unwrap() as u32;
                (
                    e["path"].as_str().unwrap().to_owned(),
                    (kind_of(e["kind"].as_str().unwrap()), mode),
                )
            })
            .collect();
        assert_eq!(got, shape(&tree), "REST listing at {at}");

        // REST stat and bytes of every file.
        for (path, node) in &tree {
            let (status, st) = s
                .call(Method::GET, &format!("/v1/sessions/{id}/stat/{path}?at={at}"))
                .await;
            assert_eq!(status, 200, "stat {path} at {at}: {st}");
            assert_eq!(st["mode"].as_u64(), Some(u64::from(node.mode)), "stat {path} at {at}");
            if node.kind == "file" {
                let resp = s
                    .req(Method::GET, &format!("/v1/sessions/{id}/files/{path}?at={at}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "GET {path} at {at}");
                assert_eq!(
                    &resp.bytes().await.unwrap()[..],
                    &node.bytes.clone().unwrap()[..],
                    "{path} at {at}"
                );
            }
        }

        // gRPC listing, stat and a read.
        let listing = grpc
            .list_tree(pb::ListTreeRequest {
                session: id.clone(),
                path: String::new(),
                recursive: true,
                at: Some(at.to_owned()),
            })
            .await
            .unwrap()
            .into_inner();
        let got: BTreeMap<String, (&'static str, u32)> = listing
            .entries
            .iter()
            .map(|e| (e.path.clone(), (kind_of(&e.kind), e.mode)))
            .collect();
        assert_eq!(got, shape(&tree), "gRPC listing at {at}");
        for path in ["secret", "ro", "tool", "private", "repo/.git/refs/heads"] {
            let st = grpc
                .stat(pb::StatRequest {
                    session: id.clone(),
                    path: path.into(),
                    at: Some(at.to_owned()),
                    content_id: None,
                })
                .await
                .unwrap_or_else(|e| panic!("gRPC stat {path} at {at}: {e:?}"))
                .into_inner();
            assert_eq!(st.mode, tree[path].mode, "gRPC stat {path} at {at}");
        }
        let mut stream = grpc
            .read_file(pb::ReadFileRequest {
                session: id.clone(),
                path: "repo/.git/packed-refs".into(),
                at: Some(at.to_owned()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut data = Vec::new();
        while let Some(m) = stream.message().await.unwrap() {
            data.extend_from_slice(&m.data);
        }
        assert_eq!(Some(data), tree["repo/.git/packed-refs"].bytes, "gRPC read at {at}");

        // The archive.
        let resp = s
            .req(Method::GET, &format!("/v1/sessions/{id}/export?format=tar&at={at}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let archive = resp.bytes().await.unwrap();
        let mut got = BTreeMap::new();
        for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_str().unwrap().trim_end_matches('/').to_owned();
            let kind = match entry.header().entry_type() {
                tar::EntryType::Directory => "dir",
                tar::EntryType::Symlink => "symlink",
                _ => "file",
            };
            let mode = entry.header().mode().unwrap() & 0o7777;
            got.insert(path, (kind, if kind == "symlink" { 0o777 } else { mode }));
        }
        assert_eq!(got, shape(&tree), "export at {at}");
    }
}
