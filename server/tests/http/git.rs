//! Git smart HTTP against the real git client: clones (v0 and v2), incremental fetch, shallow,
//! partial clone, checkpoints and the live ref, a chunked file, and the error statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::json;

use crate::common::{Server, server, server_with, split};

const GIT: &str = "/usr/local/bin/git";

/// Run git with no host or user configuration and no prompts; returns the output.
async fn git_out(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(GIT);
        cmd.current_dir(&dir)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/false");
        if let Ok(trace) = std::env::var("GIT_TRACE_PACKET") {
            cmd.env("GIT_TRACE_PACKET", trace);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

/// Run git and require success; returns stdout.
pub(crate) async fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_out(dir, args, &[]).await;
    assert!(
        out.status.success(),
        "git {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `git add .` and a commit with a fixed identity in the repository at `src`.
async fn commit_all(src: &Path, message: &str) {
    git(src, &["add", "."]).await;
    git(
        src,
        &[
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@x",
            "commit",
            "-q",
            "-m",
            message,
        ],
    )
    .await;
}

fn url(s: &Server, token: &str, id: &str) -> String {
    format!(
        "{}/git/{id}",
        s.base.replace("http://", &format!("http://git:{token}@"))
    )
}

async fn commit(s: &Server, id: &str, message: &str) -> String {
    let (status, body) = s
        .json(
            Method::POST,
            &format!("/v1/sessions/{id}/commits"),
            json!({"message": message, "author": {"name": "Ada", "email": "ada@example.com"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Clone with `extra` arguments into `<work>/<name>`; fsck it; return its path.
async fn clone(s: &Server, id: &str, work: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let u = url(s, &s.admin, id);
    let mut args = extra.to_vec();
    args.extend(["clone", "-q", u.as_str(), name]);
    git(work, &args).await;
    let repo = work.join(name);
    git(&repo, &["fsck", "--full", "--no-progress"]).await;
    repo
}

/// A new session imported from the git repository at `src`; returns its id.
async fn import(s: &Server, src: &Path) -> String {
    let source = json!({"source": {"type": "git", "url": src.to_str().unwrap()}});
    let (status, created) = s.json(Method::POST, "/v1/sessions", source).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// `clone` with protocol `proto`, keeping the received pack as it came (no unpacking into loose
/// objects) so its entries can be inspected.
async fn clone_keeping_pack(s: &Server, id: &str, work: &Path, name: &str, proto: &str) -> PathBuf {
    let version = format!("protocol.version={proto}");
    clone(s, id, work, name, &["-c", &version, "-c", "transfer.unpackLimit=1"]).await
}

fn loose_count(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("count: "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_with_protocol_v0_and_v2_is_fsck_clean() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "README.md", b"hello git\n").await;
    s.put(&id, "src/lib/deep.rs", b"pub fn deep() {}\n").await;
    commit(&s, &id, "first").await;
    s.put(&id, "src/main.rs", b"fn main() {}\n").await;
    commit(&s, &id, "second").await;
    let work = tempfile::tempdir().unwrap();
    for (name, proto) in [("v0", "protocol.version=0"), ("v2", "protocol.version=2")] {
        let repo = clone(&s, &id, work.path(), name, &["-c", proto]).await;
        assert_eq!(std::fs::read(repo.join("README.md")).unwrap(), b"hello git\n");
        assert_eq!(
            std::fs::read(repo.join("src/lib/deep.rs")).unwrap(),
            b"pub fn deep() {}\n"
        );
        assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).await.trim(), "2");
        assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]).await.trim(), "refs/heads/main");
    }
    // With `.git` appended too.
    let u = format!("{}.git", url(&s, &s.admin, &id));
    let refs = git(work.path(), &["-c", "protocol.version=2", "ls-remote", &u]).await;
    assert!(
        refs.contains("\tHEAD\n") && refs.contains("\trefs/heads/main\n"),
        "{refs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_fetch_sends_only_new_objects() {
    let s = server().await;
    let id = s.new_session().await;
    for i in 0..20 {
        s.put(&id, &format!("dir/file{i}.txt"), format!("content {i}\n").as_bytes())
            .await;
    }
    commit(&s, &id, "many files").await;
    let work = tempfile::tempdir().unwrap();
    for proto in ["0", "2"] {
        let name = format!("v{proto}");
        let cfg = format!("protocol.version={proto}");
        let repo = clone(&s, &id, work.path(), &name, &["-c", &cfg]).await;
        s.put(
            &id,
            &format!("new-{proto}.txt"),
            format!("new file {proto}\n").as_bytes(),
        )
        .await;
        let tip = commit(&s, &id, "one more").await;
        let before = loose_count(&git(&repo, &["count-objects", "-v"]).await);
        // Unpacked on arrival: every object received becomes one loose object.
        git(
            &repo,
            &["-c", &cfg, "-c", "fetch.unpackLimit=100000", "fetch", "-q", "origin"],
        )
        .await;
        let after = loose_count(&git(&repo, &["count-objects", "-v"]).await);
        // A commit, its root tree and the new blob; `dir/` and its 20 blobs are not sent again.
        assert_eq!(after - before, 3, "protocol v{proto}");
        assert_eq!(git(&repo, &["rev-parse", "origin/main"]).await.trim(), tip);
        git(&repo, &["fsck", "--full", "--no-progress"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_after_a_small_edit_sends_thin_deltas() {
    let s = server().await;
    let id = s.new_session().await;
    let text: String = (0..4000).map(|i| format!("line {i} of a long source file\n")).collect();
    s.put(&id, "src/big.txt", text.as_bytes()).await;
    s.put(&id, "src/other.txt", b"unchanged\n").await;
    commit(&s, &id, "first").await;
    let work = tempfile::tempdir().unwrap();
    for proto in ["0", "2"] {
        let cfg = format!("protocol.version={proto}");
        let repo = clone(&s, &id, work.path(), &format!("v{proto}"), &["-c", &cfg]).await;
        // One line inserted in the middle of a 130 KB file.
        let edited = text.replacen("line 2000 ", &format!("edit {proto}\nline 2000 "), 1);
        s.put(&id, "src/big.txt", edited.as_bytes()).await;
        let tip = commit(&s, &id, "edit").await;
        let out = git_out(&repo, &["-c", &cfg, "fetch", "--progress", "origin"], &[]).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let progress = String::from_utf8_lossy(&out.stderr);
        // The commit and the two small trees whole, the file as a delta against its old version.
        assert!(
            progress.contains("Total 4 (delta 0, reused 0, thin 1)"),
            "protocol v{proto}: {progress}"
        );
        assert_eq!(git(&repo, &["rev-parse", "origin/main"]).await.trim(), tip);
        assert_eq!(git(&repo, &["show", "origin/main:src/big.txt"]).await, edited);
        git(&repo, &["fsck", "--full", "--no-progress"]).await;
        git(&repo, &["merge", "-q", "--ff-only", "origin/main"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shallow_clone_then_deepen() {
    let s = server().await;
    let id = s.new_session().await;
    for i in 0..4 {
        s.put(&id, "f.txt", format!("version {i}\n").as_bytes()).await;
        commit(&s, &id, &format!("c{i}")).await;
    }
    let work = tempfile::tempdir().unwrap();
    for proto in ["0", "2"] {
        let cfg = format!("protocol.version={proto}");
        let repo = work.path().join(format!("shallow{proto}"));
        let u = url(&s, &s.admin, &id);
        git(
            work.path(),
            &["-c", &cfg, "clone", "-q", "--depth", "1", &u, repo.to_str().unwrap()],
        )
        .await;
        assert_eq!(git(&repo, &["rev-list", "--count", "HEAD"]).await.trim(), "1");
        assert!(repo.join(".git/shallow").exists());
        git(&repo, &["-c", &cfg, "fetch", "-q", "--deepen", "1"]).await;
        assert_eq!(
            git(&repo, &["rev-list", "--count", "HEAD"]).await.trim(),
            "2",
            "v{proto}"
        );
        git(&repo, &["-c", &cfg, "fetch", "-q", "--depth", "3"]).await;
        assert_eq!(
            git(&repo, &["rev-list", "--count", "HEAD"]).await.trim(),
            "3",
            "v{proto}"
        );
        git(&repo, &["-c", &cfg, "fetch", "-q", "--unshallow"]).await;
        assert_eq!(
            git(&repo, &["rev-list", "--count", "HEAD"]).await.trim(),
            "4",
            "v{proto}"
        );
        assert!(!repo.join(".git/shallow").exists());
        git(&repo, &["fsck", "--full", "--no-progress"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_clone_fetches_blobs_on_demand() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a.txt", b"old a\n").await;
    s.put(&id, "big.txt", &vec![b'x'; 5000]).await;
    commit(&s, &id, "old").await;
    s.put(&id, "a.txt", b"new a\n").await;
    commit(&s, &id, "new").await;
    let work = tempfile::tempdir().unwrap();
    for proto in ["0", "2"] {
        let cfg = format!("protocol.version={proto}");
        let repo = work.path().join(format!("partial{proto}"));
        let u = url(&s, &s.admin, &id);
        git(
            work.path(),
            &[
                "-c",
                &cfg,
                "clone",
                "-q",
                "--filter=blob:none",
                &u,
                repo.to_str().unwrap(),
            ],
        )
        .await;
        // The checkout fetched the blobs of HEAD on demand; the old version of a.txt is absent.
        assert_eq!(std::fs::read(repo.join("a.txt")).unwrap(), b"new a\n");
        let missing = git(&repo, &["rev-list", "--objects", "--all", "--missing=print"]).await;
        let old_blob = git(&repo, &["rev-parse", "HEAD~1:a.txt"]).await;
        assert!(missing.contains(&format!("?{}", old_blob.trim())), "{missing}");
        // Reading it fetches it.
        assert_eq!(git(&repo, &["-c", &cfg, "show", "HEAD~1:a.txt"]).await, "old a\n");
        git(&repo, &["fsck", "--no-progress"]).await;
    }
    // blob:limit keeps small blobs and leaves out big ones.
    let repo = work.path().join("limited");
    let u = url(&s, &s.admin, &id);
    git(
        work.path(),
        &[
            "clone",
            "-q",
            "--no-checkout",
            "--filter=blob:limit=1k",
            &u,
            repo.to_str().unwrap(),
        ],
    )
    .await;
    let missing = git(&repo, &["rev-list", "--objects", "--all", "--missing=print"]).await;
    let big = git(&repo, &["rev-parse", "HEAD:big.txt"]).await;
    assert!(missing.contains(&format!("?{}", big.trim())), "{missing}");
    assert_eq!(missing.lines().filter(|l| l.starts_with('?')).count(), 1, "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_the_live_ref() {
    let s = server().await;
    let id = s.new_session().await;
    s.put(&id, "a.txt", b"checkpointed\n").await;
    let (status, body) = s.call(Method::POST, &format!("/v1/sessions/{id}/checkpoints")).await;
    assert_eq!(status, 201, "{body}");
    s.put(&id, "b.txt", b"uncommitted\n").await;
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "r"]).await;
    let repo = work.path().join("r");
    let u = url(&s, &s.admin, &id);
    for proto in ["0", "2"] {
        let cfg = format!("protocol.version={proto}");
        let refs = git(&repo, &["-c", &cfg, "ls-remote", &u]).await;
        assert!(refs.contains("\trefs/checkpoints/1\n"), "{refs}");
        assert!(refs.contains("\trefs/aether/live\n"), "{refs}");
        git(
            &repo,
            &[
                "-c",
                &cfg,
                "fetch",
                "-q",
                &u,
                "+refs/checkpoints/*:refs/cp/*",
                "+refs/aether/live:refs/live",
            ],
        )
        .await;
        assert_eq!(git(&repo, &["show", "refs/cp/1:a.txt"]).await, "checkpointed\n");
        assert_eq!(git(&repo, &["show", "refs/live:b.txt"]).await, "uncommitted\n");
        assert_eq!(
            git(&repo, &["rev-parse", "refs/live^"]).await,
            git(&repo, &["rev-parse", "refs/cp/1"]).await
        );
    }
    // Nothing changed: the same live commit again.
    let again = git(&repo, &["ls-remote", &u, "refs/aether/live"]).await;
    assert_eq!(
        again.split('\t').next().unwrap(),
        git(&repo, &["rev-parse", "refs/live"]).await.trim()
    );
    // A write moves it.
    s.put(&id, "b.txt", b"changed\n").await;
    let moved = git(&repo, &["ls-remote", &u, "refs/aether/live"]).await;
    assert_ne!(
        moved.split('\t').next().unwrap(),
        git(&repo, &["rev-parse", "refs/live"]).await.trim()
    );
    git(&repo, &["fsck", "--full", "--no-progress"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_file_round_trips_through_clone() {
    let s = server().await;
    let id = s.new_session().await;
    // 64 MiB of incompressible bytes: far over the 1 MiB large-file threshold.
    let data = noise(64 << 20, 0x9e3779b97f4a7c15);
    let stat = s.put(&id, "assets/big.bin", &data).await;
    commit(&s, &id, "big").await;
    let (_, st) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/stat/assets/big.bin"))
        .await;
    assert!(
        st.to_string().contains("extents") || stat.to_string().contains("chunk"),
        "{st}"
    );
    let work = tempfile::tempdir().unwrap();
    let repo = clone(&s, &id, work.path(), "big", &["-c", "protocol.version=2"]).await;
    let got = std::fs::read(repo.join("assets/big.bin")).unwrap();
    assert!(got == data, "the cloned file differs");

    // The first clone kept the blob's zlib stream; a second clone is served from it.
    let oid = git(&repo, &["rev-parse", "HEAD:assets/big.bin"]).await;
    let oid = oid.trim();
    let entry = s.data_dir().join("cache/git-zlib").join(&oid[..2]).join(&oid[2..]);
    let kept = std::fs::metadata(&entry).expect("the compressed stream is cached");
    assert!(kept.len() > 60 << 20, "a whole stream: {} bytes", kept.len());
    let again = clone(&s, &id, work.path(), "big-again", &["-c", "protocol.version=2"]).await;
    git(&again, &["fsck", "--full", "--strict"]).await;
    assert!(std::fs::read(again.join("assets/big.bin")).unwrap() == data);
    let leftovers: Vec<_> = std::fs::read_dir(entry.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// `n` incompressible bytes (xorshift from `seed`).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; n];
    let mut x = seed | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Bytes of the regular files under `dir`, all levels down.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_cache_stays_within_its_limit_and_clones_stay_whole() {
    // Room for two of the three 4 MiB streams.
    let limit = 9 << 20;
    let s = server_with(|c| c.git_cache_bytes = limit).await;
    let id = s.new_session().await;
    let files: Vec<(String, Vec<u8>)> = (0..3u64)
        .map(|i| (format!("big/{i}.bin"), noise(4 << 20, 0x51ed + i)))
        .collect();
    for (path, data) in &files {
        s.put(&id, path, data).await;
    }
    commit(&s, &id, "three large files").await;
    let cache = s.data_dir().join("cache");
    let work = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let repo = clone(&s, &id, work.path(), &format!("c{round}"), &[]).await;
        git(&repo, &["fsck", "--full", "--strict"]).await;
        for (path, data) in &files {
            assert!(
                std::fs::read(repo.join(path)).unwrap() == *data,
                "{path} differs in clone {round}"
            );
        }
        let used = bytes_under(&cache);
        assert!(
            used <= limit,
            "clone {round}: the cache holds {used} bytes, over its {limit}"
        );
        assert!(
            used >= 4 << 20,
            "clone {round}: the cache keeps what fits ({used} bytes)"
        );
    }

    // With a limit of 0 nothing is kept, and clones still work.
    let s = server_with(|c| c.git_cache_bytes = 0).await;
    let id = s.new_session().await;
    s.put(&id, "big.bin", &files[0].1).await;
    commit(&s, &id, "one large file").await;
    let repo = clone(&s, &id, work.path(), "none", &[]).await;
    assert!(std::fs::read(repo.join("big.bin")).unwrap() == files[0].1);
    assert_eq!(
        bytes_under(&s.data_dir().join("cache")),
        0,
        "a limit of 0 keeps nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_errors_have_fitting_statuses() {
    let s = server().await;
    let id = s.new_session().await;
    let other = s.new_session().await;
    s.put(&id, "a.txt", b"a\n").await;
    commit(&s, &id, "a").await;

    // No credentials: 401 with a Basic challenge, so git asks its credential helper.
    let resp = s
        .anon(Method::GET, &format!("/git/{id}/info/refs?service=git-upload-pack"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"aetherfs\"");
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("authentication required: give an AetherFS token as the password"),
        "{text}"
    );
    // A wrong password: still basic auth's terms, never the REST API's "bearer token".
    let resp = s
        .anon(Method::GET, &format!("/git/{id}/info/refs?service=git-upload-pack"))
        .basic_auth("git", Some("not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("authentication failed:") && !text.contains("bearer"),
        "{text}"
    );

    // A read token for this session works over basic auth; for another session it is refused.
    let token = s.read_token(&id).await;
    let work = tempfile::tempdir().unwrap();
    let refs = git(work.path(), &["ls-remote", &url(&s, &token, &id)]).await;
    assert!(refs.contains("refs/heads/main"), "{refs}");
    let resp = s
        .anon(Method::GET, &format!("/git/{other}/info/refs?service=git-upload-pack"))
        .basic_auth("git", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Unknown session: 404, and git says so.
    let unknown = "00000000000000000000000000";
    let (status, _) = split(
        s.req(
            Method::GET,
            &format!("/git/{unknown}/info/refs?service=git-upload-pack"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let out = git_out(work.path(), &["ls-remote", &url(&s, &s.admin, unknown)], &[]).await;
    assert!(!out.status.success());

    // A malformed pkt-line: 400 with a message.
    for version in ["version=2", ""] {
        let resp = s
            .req(Method::POST, &format!("/git/{id}/git-upload-pack"))
            .header("git-protocol", version)
            .body("zzzznot a pkt-line")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains("pkt-line"), "{text}");
    }
    // A want outside the session: 400.
    let resp = s
        .req(Method::POST, &format!("/git/{id}/git-upload-pack"))
        .body(format!("0032want {}\n00000009done\n", "1".repeat(40)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("not our ref"));
}

/// A repository `src` in `scratch` whose `notes.txt` grows by a line in each of `commits`
/// commits, repacked so git stores the versions as deltas, imported into a session. Returns the
/// session and the last version of the file.
async fn import_growing_notes(s: &Server, scratch: &Path, commits: usize) -> (String, String) {
    let src = scratch.join("src");
    git(scratch, &["init", "-q", "-b", "main", "src"]).await;
    let mut text: String = (0..400)
        .map(|i| format!("line {i} of a file that changes a little\n"))
        .collect();
    for i in 0..commits {
        text.push_str(&format!("change {i}\n"));
        std::fs::write(src.join("notes.txt"), &text).unwrap();
        commit_all(&src, &format!("c{i}")).await;
    }
    git(&src, &["repack", "-adfq"]).await;
    (import(s, &src).await, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_of_an_imported_repository_reuses_stored_deltas() {
    let s = server().await;
    let scratch = tempfile::tempdir().unwrap();
    let (id, text) = import_growing_notes(&s, scratch.path(), 6).await;
    for proto in ["0", "2"] {
        let name = format!("clone{proto}");
        let repo = clone_keeping_pack(&s, &id, scratch.path(), &name, proto).await;
        assert_eq!(std::fs::read_to_string(repo.join("notes.txt")).unwrap(), text);
        assert_eq!(
            git(&repo, &["rev-parse", "HEAD"]).await,
            git(&scratch.path().join("src"), &["rev-parse", "HEAD"]).await
        );
        // The received pack holds the source's deltas (verify-pack lists delta chains).
        let pack_dir = repo.join(".git/objects/pack");
        let idx = std::fs::read_dir(&pack_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "idx"))
            .unwrap();
        let verify = git(&repo, &["verify-pack", "-v", idx.to_str().unwrap()]).await;
        assert!(verify.contains("chain length = 1"), "no deltas were sent:\n{verify}");
    }
}

/// The type of every entry of `pack` (a whole pack file, `PACK` first).
fn pack_entry_types(pack: &[u8]) -> Vec<u8> {
    assert_eq!(&pack[..4], b"PACK");
    let count = u32::from_be_bytes(pack[8..12].try_into().unwrap());
    let mut pos = 12;
    let mut types = Vec::new();
    for _ in 0..count {
        let mut c = pack[pos];
        pos += 1;
        types.push((c >> 4) & 7);
        while c & 0x80 != 0 {
            c = pack[pos];
            pos += 1;
        }
        match types.last() {
            Some(6) => {
                while pack[pos] & 0x80 != 0 {
                    pos += 1;
                }
                pos += 1;
            }
            Some(7) => pos += 20,
            _ => {}
        }
        // The entry's zlib stream: inflate it to learn where it ends.
        let mut z = flate2::Decompress::new(true);
        let mut out = vec![0u8; 1 << 16];
        loop {
            let before = z.total_in();
            let status = z
                .decompress(&pack[pos..], &mut out, flate2::FlushDecompress::None)
                .unwrap();
            pos += (z.total_in() - before) as usize;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
    }
    assert_eq!(pos, pack.len() - 20, "the entries end at the trailing checksum");
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_name_their_base_by_offset_only_for_clients_that_asked() {
    let s = server().await;
    let scratch = tempfile::tempdir().unwrap();
    let (id, _) = import_growing_notes(&s, scratch.path(), 4).await;
    let src = scratch.path().join("src");
    let head = git(&src, &["rev-parse", "HEAD"]).await.trim().to_owned();
    for (caps, ofs) in [("ofs-delta", true), ("", false)] {
        // A protocol v0 request, as a client that lists its capabilities on the first want.
        let want = format!("want {head} {caps}\n");
        let body = format!("{:04x}{want}00000009done\n", want.len() + 4);
        let resp = s
            .req(Method::POST, &format!("/git/{id}/git-upload-pack"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let bytes = resp.bytes().await.unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == b"PACK")
            .expect("a pack follows the NAK");
        let pack = &bytes[at..];
        let types = pack_entry_types(pack);
        let (by_offset, by_id) = (
            types.iter().filter(|t| **t == 6).count(),
            types.iter().filter(|t| **t == 7).count(),
        );
        if ofs {
            assert!(by_offset > 0, "stored deltas go out by offset: {types:?}");
        } else {
            assert_eq!(
                by_offset, 0,
                "no offset deltas for a client without ofs-delta: {types:?}"
            );
            assert!(by_id > 0, "the deltas still go out, naming their base: {types:?}");
        }
        // Whatever the form, git reads the pack and finds every object of the history.
        let repo = scratch.path().join(format!("recv-{ofs}"));
        git(scratch.path(), &["init", "-q", repo.to_str().unwrap()]).await;
        let path = repo.join("received.pack");
        std::fs::write(&path, pack).unwrap();
        git(&repo, &["index-pack", "--strict", path.to_str().unwrap()]).await;
        let verify = git(&repo, &["verify-pack", "-v", path.to_str().unwrap()]).await;
        assert!(verify.contains(&head), "{verify}");
    }
}

/// The `.idx` of the one pack a clone received (kept as a pack by `transfer.unpackLimit=1`).
fn received_idx(repo: &Path) -> PathBuf {
    std::fs::read_dir(repo.join(".git/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap()
}

/// `git verify-pack -v` line of `oid`: `oid type size size-in-pack offset [depth base]`.
async fn pack_line(repo: &Path, oid: &str) -> Vec<String> {
    let idx = received_idx(repo);
    let verify = git(repo, &["verify-pack", "-v", idx.to_str().unwrap()]).await;
    verify
        .lines()
        .find(|l| l.starts_with(oid))
        .unwrap_or_else(|| panic!("{oid} is not in the received pack:\n{verify}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_imported_as_deltas_are_cloned_as_deltas() {
    let s = server().await;
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("src");
    git(scratch.path(), &["init", "-q", "-b", "main", "src"]).await;
    // Two versions of a file over the 1 MiB large-file threshold: the second drops a few lines
    // and changes one, so git stores it as a delta against the (larger) first.
    let lines: Vec<String> = (0u64..60_000)
        .map(|i| format!("{i:08} {:016x}\n", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let v1: String = lines.concat();
    let mut v2_lines = lines.clone();
    v2_lines.drain(1000..1100);
    v2_lines[30_000] = "a changed line\n".to_owned();
    let v2: String = v2_lines.concat();
    assert!(v2.len() > 1 << 20 && v1.len() > v2.len());
    for (i, content) in [&v1, &v2].into_iter().enumerate() {
        std::fs::write(src.join("big.txt"), content).unwrap();
        std::fs::write(src.join("small.txt"), format!("version {i}\n")).unwrap();
        commit_all(&src, &format!("v{i}")).await;
    }
    git(&src, &["repack", "-adfq"]).await;
    let old = git(&src, &["rev-parse", "HEAD~1:big.txt"]).await.trim().to_owned();
    let new = git(&src, &["rev-parse", "HEAD:big.txt"]).await.trim().to_owned();
    let stored = git(
        &src,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(deltabase)",
        ],
    )
    .await;
    let src_line = stored.lines().find(|l| l.starts_with(&new)).unwrap();
    assert_eq!(
        src_line,
        format!("{new} {old}"),
        "fixture: git stored the new version as a delta"
    );

    // Two sessions from the same repository: the second import finds the entries kept already.
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(import(&s, &src).await);
    }
    for (n, id) in ids.iter().enumerate() {
        for proto in ["0", "2"] {
            let name = format!("full-{n}-v{proto}");
            let repo = clone_keeping_pack(&s, id, scratch.path(), &name, proto).await;
            assert_eq!(std::fs::read_to_string(repo.join("big.txt")).unwrap(), v2);
            git(&repo, &["checkout", "-q", "HEAD~1"]).await;
            assert_eq!(std::fs::read_to_string(repo.join("big.txt")).unwrap(), v1);
            // The new version went as the delta the import kept, against the old one.
            let line = pack_line(&repo, &new).await;
            assert_eq!(line.len(), 7, "{new} was sent whole: {line:?}");
            assert_eq!(line[6], old, "{line:?}");
            assert!(
                line[3].parse::<u64>().unwrap() < 64 << 10,
                "the delta is small: {line:?}"
            );
        }
    }

    // A shallow clone does not get the base: the new version goes whole (and fsck is clean).
    let shallow = scratch.path().join("shallow-1");
    let u = url(&s, &s.admin, &ids[0]);
    git(
        scratch.path(),
        &[
            "-c",
            "transfer.unpackLimit=1",
            "clone",
            "-q",
            "--depth",
            "1",
            &u,
            "shallow-1",
        ],
    )
    .await;
    git(&shallow, &["fsck", "--full", "--no-progress"]).await;
    assert_eq!(std::fs::read_to_string(shallow.join("big.txt")).unwrap(), v2);
    let line = pack_line(&shallow, &new).await;
    assert_eq!(line.len(), 5, "without its base it must go whole: {line:?}");
}

/// Paths and kinds of a session's whole tree, over REST, sorted by path.
async fn tree_listing(s: &Server, id: &str) -> Vec<(String, String)> {
    let (status, body) = s
        .call(Method::GET, &format!("/v1/sessions/{id}/tree?recursive=true"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_like_escapes_survive_import_clone_and_reimport() {
    let s = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join(".git~"), "a file named .git~\n").unwrap();
    std::fs::write(src.join("GIT~1~"), "a file named GIT~1~\n").unwrap();
    std::fs::write(src.join("sub/.GIT~~"), "a file named .GIT~~\n").unwrap();
    git(work.path(), &["init", "-q", "-b", "main", src.to_str().unwrap()]).await;
    commit_all(&src, "escapes").await;
    let source_head = git(&src, &["rev-parse", "HEAD"]).await;

    let id = import(&s, &src).await;
    let file = |p: &str| (p.to_owned(), "file".to_owned());
    let dir = |p: &str| (p.to_owned(), "dir".to_owned());
    assert_eq!(
        tree_listing(&s, &id).await,
        [file(".git~"), file("GIT~1~"), dir("sub"), file("sub/.GIT~~")],
        "the names as the repository has them"
    );
    assert_eq!(s.get(&id, ".git~").await, b"a file named .git~\n");

    // The session's own repository lives beside them, and is committed.
    s.put(&id, ".git/HEAD", b"ref: refs/heads/main\n").await;
    commit(&s, &id, "own repository").await;
    let mine = [
        dir(".git"),
        file(".git/HEAD"),
        file(".git~"),
        file("GIT~1~"),
        dir("sub"),
        file("sub/.GIT~~"),
    ];
    assert_eq!(tree_listing(&s, &id).await, mine);

    // A clone (fsck-clean) shows both, apart, in git's spelling, on top of the source's commit.
    let clone = clone(&s, &id, work.path(), "clone", &[]).await;
    assert_eq!(
        std::fs::read(clone.join(".git~/HEAD")).unwrap(),
        b"ref: refs/heads/main\n"
    );
    assert_eq!(std::fs::read(clone.join(".git~~")).unwrap(), b"a file named .git~\n");
    assert_eq!(std::fs::read(clone.join("GIT~1~~")).unwrap(), b"a file named GIT~1~\n");
    assert_eq!(git(&clone, &["rev-parse", "HEAD~1"]).await, source_head);

    // Imported again from the clone: the same session names.
    let again = import(&s, &clone).await;
    assert_eq!(tree_listing(&s, &again).await, mine);
    assert_eq!(s.get(&again, ".git~").await, b"a file named .git~\n");
}

/// A fork has no branch ref of its own yet; its remote still advertises the branch the API
/// reports, with `HEAD` a symbolic ref to it, so a clone checks out that branch (not a detached
/// `HEAD`), over both protocol versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_of_a_fork_checks_out_the_sessions_branch() {
    let s = server().await;
    let parent = s.new_session().await;
    s.put(&parent, "README.md", b"from the parent\n").await;
    let parent_commit = commit(&s, &parent, "first").await;
    let (status, fork) = s
        .json(Method::POST, &format!("/v1/sessions/{parent}/fork"), json!({}))
        .await;
    assert_eq!(status, 201, "{fork}");
    assert_eq!(fork["branch"], "main", "{fork}");
    let fork = fork["id"].as_str().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    for (name, proto) in [("v0", "protocol.version=0"), ("v2", "protocol.version=2")] {
        let repo = clone(&s, &fork, work.path(), name, &["-c", proto]).await;
        assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]).await.trim(), "refs/heads/main");
        git(&repo, &["merge-base", "--is-ancestor", &parent_commit, "HEAD"]).await;
        assert_eq!(std::fs::read(repo.join("README.md")).unwrap(), b"from the parent\n");
        let remote = git(&repo, &["-c", proto, "ls-remote", "--symref", "origin"]).await;
        assert!(remote.contains("ref: refs/heads/main\tHEAD"), "{remote}");
        assert!(remote.contains("\trefs/heads/main\n"), "{remote}");
    }
}
