//! Every command's human and `--json` output, pinned.

use crate::env::TestEnv;
use crate::snap;

#[test]
fn session_commands() {
    let env = TestEnv::new();
    let mut log = String::new();
    let created = env.step(
        &mut log,
        &["session", "create", "--label", "team=infra", "--tag", "blue"],
    );
    let id = created
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let json = env.step(&mut log, &["session", "create", "--json", "--branch", "dev"]);
    let other = json.json()["id"].as_str().unwrap().to_owned();
    env.step(&mut log, &["session", "list"]);
    env.step(&mut log, &["session", "list", "--json", "--label", "team=infra"]);
    env.step(&mut log, &["session", "show", &id]);
    env.step(&mut log, &["session", "show", &id, "--json"]);
    env.step(&mut log, &["session", "label", &id, "owner=ada", "--remove", "team"]);
    env.step(&mut log, &["session", "label", &id, "x=1", "--json"]);
    env.step(&mut log, &["session", "tag", &id, "red", "green"]);
    env.step(
        &mut log,
        &["session", "tag", &id, "--add", "yellow", "--remove", "red", "--json"],
    );
    env.step(&mut log, &["session", "fork", &id, "--label", "kind=fork"]);
    env.step(&mut log, &["session", "fork", &id, "--json"]);
    env.step(&mut log, &["session", "create", "--from-session", &id, "--tag", "copy"]);
    // Usage and quotas: a file of 2000 bytes, a quota under it refuses a second one.
    let file = env.home().join("two-k.bin");
    std::fs::write(&file, vec![7u8; 2000]).unwrap();
    env.step(&mut log, &["fs", "put", &id, file.to_str().unwrap(), "a.bin"]);
    env.step(
        &mut log,
        &["session", "quota", &id, "--quota-bytes", "3K", "--quota-files", "5"],
    );
    env.step(&mut log, &["fs", "put", &id, file.to_str().unwrap(), "b.bin"]);
    env.step(&mut log, &["session", "usage", &id]);
    env.step(&mut log, &["session", "usage", &id, "--json"]);
    env.step(&mut log, &["session", "quota", &id]);
    env.step(&mut log, &["session", "quota", &id, "--unlimited", "--json"]);
    env.step(&mut log, &["fs", "put", &id, file.to_str().unwrap(), "b.bin"]);
    env.step(
        &mut log,
        &[
            "session",
            "retention",
            &id,
            "--keep-checkpoints",
            "3",
            "--keep-checkpoint-days",
            "7",
        ],
    );
    env.step(&mut log, &["session", "retention", &id, "--server-default", "--json"]);
    env.step(&mut log, &["session", "retention", &id, "--keep-checkpoints", "0"]);
    // Server-wide: bytes on disk vary with compression, so not in the snapshot.
    let all = env.ok(&["usage", "--json"]).json();
    assert_eq!(
        (&all["sessions"], &all["bytes"]),
        (&serde_json::json!(5), &serde_json::json!(4000)),
        "{all}"
    );
    assert!(all["disk"]["objects"].as_u64().unwrap() > 0, "{all}");
    env.step(&mut log, &["session", "archive", &other]);
    env.step(&mut log, &["session", "archive", &other, "--json"]);
    env.step(&mut log, &["session", "delete", &other]);
    env.step(&mut log, &["session", "delete", &id, "--json"]);
    snap!(&env, "session_commands", log);
}

#[test]
fn create_from_dir_and_tar_export_import() {
    let env = TestEnv::new();
    let dir = env.home().join("tree");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(dir.join("README"), "hi\n").unwrap();
    std::os::unix::fs::symlink("src/main.rs", dir.join("link")).unwrap();
    let mut log = String::new();
    let s = env.step(
        &mut log,
        &["session", "create", "--from-dir", "tree", "--json", "--tag", "dir"],
    );
    let id = s.json()["id"].as_str().unwrap().to_owned();
    env.step(&mut log, &["fs", "ls", &id, "-r"]);
    env.step(&mut log, &["export", &id, "-o", "out.tar", "--json"]);
    let gz = env.ok(&["export", &id, "-o", "out.tar.gz"]);
    assert!(gz.stdout.starts_with("exported "), "{}", gz.stdout);
    let gz = std::fs::read(env.home().join("out.tar.gz")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let imported = env.step(&mut log, &["import", "out.tar", "--label", "from=tar"]);
    assert_eq!(imported.code, 0);
    let t = env.step(&mut log, &["session", "create", "--from-tar", "out.tar.gz", "--json"]);
    let tid = t.json()["id"].as_str().unwrap().to_owned();
    env.step(&mut log, &["fs", "cat", &tid, "src/main.rs"]);
    env.step(&mut log, &["fs", "stat", &tid, "link"]);
    // A git repository on this machine (the server clones it).
    let repo = env.home().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("from-git.txt"), "git\n").unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(ok.success());
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "from-git.txt"]);
    git(&["commit", "-q", "-m", "add"]);
    let repo_path = repo.to_str().unwrap().to_owned();
    let g = env.step(
        &mut log,
        &["session", "create", "--from-git", &repo_path, "--ref", "main", "--json"],
    );
    let gid = g.json()["id"].as_str().unwrap().to_owned();
    env.step(&mut log, &["fs", "cat", &gid, "from-git.txt"]);
    env.step(&mut log, &["log", &gid]);
    snap!(&env, "create_from_dir_and_tar_export_import", log);
}

#[test]
fn fs_commands() {
    let env = TestEnv::new();
    let id = env.new_session();
    std::fs::write(env.home().join("hello.txt"), "hello\n").unwrap();
    let big: Vec<u8> = (0..3 * (1 << 20) + 17).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(env.home().join("big.bin"), &big).unwrap();
    let mut log = String::new();
    env.step(&mut log, &["fs", "put", &id, "hello.txt", "docs/hello.txt"]);
    env.step(
        &mut log,
        &["fs", "put", &id, "big.bin", "data/big.bin", "--mode", "600", "--json"],
    );
    env.step(&mut log, &["fs", "ls", &id]);
    env.step(&mut log, &["fs", "ls", &id, "docs", "--json"]);
    env.step(&mut log, &["fs", "cat", &id, "docs/hello.txt"]);
    env.step(&mut log, &["fs", "stat", &id, "data/big.bin"]);
    env.step(&mut log, &["fs", "stat", &id, "docs/hello.txt", "--json"]);
    env.step(&mut log, &["fs", "mkdir", &id, "a/b/c", "-p"]);
    env.step(&mut log, &["fs", "mkdir", &id, "empty", "--json"]);
    env.step(&mut log, &["fs", "ln", &id, "docs/hello.txt", "a/link"]);
    env.step(&mut log, &["fs", "ln", &id, "../x", "a/b/link2", "--json"]);
    env.step(&mut log, &["fs", "chmod", &id, "755", "docs/hello.txt"]);
    env.step(&mut log, &["fs", "chmod", &id, "700", "docs/hello.txt", "--json"]);
    env.step(&mut log, &["fs", "mv", &id, "docs/hello.txt", "docs/hi.txt"]);
    env.step(&mut log, &["fs", "mv", &id, "docs/hi.txt", "hi.txt", "--json"]);
    env.step(&mut log, &["fs", "rm", &id, "a", "-r"]);
    env.step(&mut log, &["fs", "rm", &id, "empty", "--json"]);
    env.step(&mut log, &["fs", "ls", &id, "-r"]);
    env.step(&mut log, &["fs", "get", &id, "hi.txt"]);
    env.step(&mut log, &["fs", "get", &id, "hi.txt", "copy.txt", "--json"]);
    snap!(&env, "fs_commands", log);
    assert_eq!(std::fs::read(env.home().join("copy.txt")).unwrap(), b"hello\n");

    // Downloads stream and resume: keep a prefix locally, fetch the rest.
    let r = env.ok(&["fs", "get", &id, "data/big.bin", "big.copy"]);
    assert!(r.stdout.contains("3.0 MiB"), "{}", r.stdout);
    assert!(std::fs::read(env.home().join("big.copy")).unwrap() == big);
    std::fs::write(env.home().join("part.bin"), &big[..1_000_000]).unwrap();
    let r = env.ok(&["fs", "get", &id, "data/big.bin", "part.bin", "--resume", "--json"]);
    let v = r.json();
    assert_eq!(v["offset"], 1_000_000);
    assert_eq!(v["bytes"], big.len() as u64 - 1_000_000);
    assert!(std::fs::read(env.home().join("part.bin")).unwrap() == big);
    // Upload from standard input.
    let mut cmd = env.cmd(&["fs", "put", &id, "-", "stdin.txt", "--json"]);
    cmd.stdin(std::fs::File::open(env.home().join("hello.txt")).unwrap());
    let r = crate::env::run(cmd);
    assert_eq!(r.json()["size"], 6);
    assert_eq!(env.ok(&["fs", "cat", &id, "stdin.txt"]).stdout, "hello\n");
}

#[test]
fn history_commands() {
    let env = TestEnv::new();
    let id = env.new_session();
    std::fs::write(env.home().join("a.txt"), "one\n").unwrap();
    env.ok(&["fs", "put", &id, "a.txt", "a.txt"]);
    let mut log = String::new();
    env.step(&mut log, &["checkpoint", "create", &id, "-m", "first"]);
    std::fs::write(env.home().join("a.txt"), "two\n").unwrap();
    env.ok(&["fs", "put", &id, "a.txt", "a.txt"]);
    env.step(&mut log, &["checkpoint", "create", &id, "--json"]);
    env.step(&mut log, &["checkpoint", "list", &id]);
    env.step(&mut log, &["checkpoint", "list", &id, "--json"]);
    env.step(&mut log, &["fs", "cat", &id, "a.txt", "--at", "checkpoints/1"]);
    env.step(&mut log, &["checkpoint", "restore", &id, "checkpoints/1"]);
    env.step(&mut log, &["checkpoint", "restore", &id, "checkpoints/2", "--json"]);
    env.step(
        &mut log,
        &["commit", &id, "-m", "first commit", "--author", "Ada <ada@example.com>"],
    );
    env.step(&mut log, &["commit", &id, "-m", "second", "--json"]);
    env.step(&mut log, &["log", &id]);
    env.step(&mut log, &["log", &id, "--json", "--limit", "1"]);
    snap!(&env, "history_commands", log);
}

#[test]
fn token_commands() {
    let env = TestEnv::new();
    let id = env.new_session();
    let mut log = String::new();
    env.step(
        &mut log,
        &[
            "token",
            "create",
            "--session",
            &id,
            "--access",
            "write",
            "--description",
            "ci",
        ],
    );
    let created = env.step(&mut log, &["token", "create", "--session", &id, "--json"]);
    let v = created.json();
    let (tid, secret) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    env.step(&mut log, &["token", "list"]);
    env.step(&mut log, &["token", "list", "--json"]);
    // The read token can read but not write or list tokens.
    let mut cmd = env.bare(&["session", "show", &id, "--json"]);
    cmd.env("AETHER_URL", &env.url).env("AETHER_TOKEN", &secret);
    assert_eq!(crate::env::run(cmd).json()["id"], id.as_str());
    let mut cmd = env.bare(&["fs", "mkdir", &id, "x"]);
    cmd.arg("--token").arg(&secret).env("AETHER_URL", &env.url);
    let denied = crate::env::run(cmd);
    log.push_str(&format!(
        "$ aether fs mkdir ID x --token READ_TOKEN\n{}\n",
        denied.transcript()
    ));
    env.step(&mut log, &["token", "revoke", &tid]);
    env.step(&mut log, &["token", "revoke", &tid, "--json"]);
    snap!(&env, "token_commands", log);
}

#[test]
fn doctor_and_connection_settings() {
    let env = TestEnv::new();
    let mut log = String::new();
    let fuse = (r"(?m)^fuse .*$".to_owned(), "fuse    [FUSE]".to_owned());
    let fuse_json = (
        r#""detail": "[^"]*",\n(\s*)"name": "fuse",\n(\s*)"status": "[a-z]+""#.to_owned(),
        r#""detail": "[FUSE]",
$1"name": "fuse",
$2"status": "[FUSE]""#
            .to_owned(),
    );
    env.step(&mut log, &["doctor"]);
    env.step(&mut log, &["doctor", "--json"]);
    env.step(&mut log, &["doctor", "--token", "wrong"]);
    // A config file under XDG_CONFIG_HOME gives server and token; nothing in the environment.
    let xdg = env.home().join("xdg");
    std::fs::create_dir_all(xdg.join("aether")).unwrap();
    std::fs::write(
        xdg.join("aether/config.toml"),
        format!("server = \"{}\"\ntoken = \"{}\"\n", env.url, env.admin),
    )
    .unwrap();
    let mut cmd = env.bare(&["doctor"]);
    cmd.env("XDG_CONFIG_HOME", &xdg);
    let r = crate::env::run(cmd);
    log.push_str(&format!("$ XDG_CONFIG_HOME=xdg aether doctor\n{}\n", r.transcript()));
    // An unknown key in the config file is an error.
    std::fs::write(xdg.join("aether/config.toml"), "sever = \"x\"\n").unwrap();
    let mut cmd = env.bare(&["session", "list"]);
    cmd.env("XDG_CONFIG_HOME", &xdg);
    let r = crate::env::run(cmd);
    log.push_str(&format!(
        "$ XDG_CONFIG_HOME=xdg aether session list  # bad config\n{}\n",
        r.transcript()
    ));
    // With no token anywhere and a local server, the admin token file of the data directory.
    let mut cmd = env.bare(&["session", "list", "--json"]);
    cmd.env("AETHER_URL", &env.url).env("AETHER_DATA_DIR", &env.data_dir);
    let r = crate::env::run(cmd);
    log.push_str(&format!(
        "$ AETHER_DATA_DIR=[DATA] aether session list --json\n{}\n",
        r.transcript()
    ));
    let filters = crate::env::filters(&env);
    let mut refs: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    refs.push((fuse.0.as_str(), fuse.1.as_str()));
    refs.push((fuse_json.0.as_str(), fuse_json.1.as_str()));
    insta::with_settings!({filters => refs, prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!("doctor_and_connection_settings", log);
    });
}

#[test]
fn completions() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = env.ok(&["completions", shell]);
        assert!(
            r.stdout.contains("aether") && r.stdout.contains("checkpoint"),
            "{shell}"
        );
    }
    let r = env.run(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{}", r.transcript());
}

#[test]
fn watch_prints_history_then_live_events() {
    let env = TestEnv::new();
    let id = env.new_session();
    std::fs::write(env.home().join("a.txt"), "a").unwrap();
    env.ok(&["fs", "put", &id, "a.txt", "a.txt"]);
    let mut log = String::new();
    env.step(&mut log, &["session", "watch", &id, "--limit", "2"]);
    env.step(&mut log, &["session", "watch", &id, "--limit", "2", "--json"]);
    // A live watch sees a write made after it started.
    let child = env
        .cmd(&["session", "watch", &id, "--after", "2", "--limit", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["fs", "mkdir", &id, "later"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (ev["kind"].as_str(), ev["path"].as_str()),
        (Some("mkdir"), Some("later"))
    );
    // The CLI talks gRPC with the admin token, and is no mount.
    assert_eq!(
        ev["origin"],
        serde_json::json!({"surface": "grpc", "principal": "admin", "mount": null})
    );
    snap!(&env, "watch_prints_history_then_live_events", log);
}

/// `aether top --once --json`: the analytics as the REST API shapes them, the session that got
/// the traffic first; without `--json`, one frame of plain text (no ANSI codes when piped).
#[test]
fn top_once_shows_the_busiest_session_first() {
    let env = TestEnv::new();
    let busy = env.new_session();
    let quiet = env.new_session();
    for dir in ["a", "b", "c"] {
        env.ok(&["fs", "mkdir", &busy, dir]);
    }
    env.ok(&["fs", "mkdir", &quiet, "q"]);
    let json = env.ok(&["top", "--once", "--json"]).json();
    let top = json["top_sessions"].as_array().unwrap();
    assert_eq!(top[0]["session"], busy.as_str(), "{json}");
    assert_eq!(top[0]["operations"], 3, "{json}");
    assert_eq!(top[1]["session"], quiet.as_str(), "{json}");
    assert_eq!(top[1]["operations"], 1, "{json}");
    let mkdir = json["latency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["operation"] == "mkdir")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(mkdir["count"], 4);
    assert!(mkdir["p50_us"].as_u64() <= mkdir["p99_us"].as_u64(), "{mkdir}");
    let frame = env.ok(&["top", "--once"]);
    assert!(frame.stdout.contains(&busy), "{}", frame.stdout);
    assert!(frame.stdout.contains("OPERATION"), "{}", frame.stdout);
    assert!(
        !frame.stdout.contains('\x1b'),
        "no ANSI codes into a pipe: {:?}",
        frame.stdout
    );
    let bad = env.run(&["top", "--once", "--window", "soon"]);
    assert_eq!(bad.code, 2, "{}", bad.transcript());
}

/// `aether session health`: ok with nothing attached, the last failed operation, and not found
/// for a session that does not exist.
#[test]
fn session_health_shows_status_mounts_and_the_last_error() {
    let env = TestEnv::new();
    let id = env.new_session();
    let h = env.ok(&["session", "health", &id, "--json"]).json();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["mounts"], serde_json::json!([]));
    assert_eq!(h["quota"], serde_json::Value::Null);
    assert_eq!(h["last_error"], serde_json::Value::Null);
    let missing = env.run(&["fs", "cat", &id, "nope"]);
    assert_eq!(missing.code, 3, "{}", missing.transcript());
    let h = env.ok(&["session", "health", &id, "--json"]).json();
    assert_eq!(h["last_error"]["operation"], "read", "{h}");
    assert_eq!(h["last_error"]["code"], "not_found", "{h}");
    let text = env.ok(&["session", "health", &id]);
    assert!(
        text.stdout.contains("status:") && text.stdout.contains("ok"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("not_found"), "{}", text.stdout);
    let gone = env.run(&["session", "health", "00000000000000000000000000"]);
    assert_eq!(gone.code, 3, "{}", gone.transcript());
}

/// `aether activity`: a session's changes with who and through what, filtered; `--follow`
/// prints a change made after it started.
#[test]
fn activity_lists_filters_and_follows() {
    let env = TestEnv::new();
    let id = env.new_session();
    env.ok(&["fs", "mkdir", &id, "src"]);
    env.ok(&["fs", "mkdir", &id, "docs"]);
    env.ok(&["fs", "rm", &id, "docs"]);
    let all = env.ok(&["activity", &id, "--json"]);
    let lines: Vec<serde_json::Value> = all.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "mkdir", "mkdir", "delete"], "{}", all.stdout);
    assert_eq!(lines[1]["origin"]["surface"], "grpc");
    assert_eq!(lines[1]["origin"]["principal"], "admin");

    let deletes = env.ok(&["activity", &id, "--operation", "delete", "--prefix", "docs"]);
    assert_eq!(deletes.stdout.lines().count(), 1, "{}", deletes.stdout);
    assert!(deletes.stdout.contains("delete"), "{}", deletes.stdout);
    let none = env.ok(&["activity", &id, "--surface", "mount"]);
    assert!(none.stdout.is_empty(), "{}", none.stdout);

    // Following: the five events already there, then one made while it waits.
    let follow = env
        .cmd(&["activity", &id, "--follow", "--limit", "5", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["fs", "mkdir", &id, "later"]);
    let out = follow.wait_with_output().unwrap();
    assert!(out.status.success());
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["path"], "later");

    let bad = env.run(&["activity", &id, "--since", "yesterday"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--since"), "{}", bad.transcript());
}
