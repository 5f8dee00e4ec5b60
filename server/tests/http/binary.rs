//! The `aetherd` binary itself: first start, the admin token file, config precedence, graceful
//! shutdown on SIGTERM with nothing acknowledged lost.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use aether_server::config::{Cli, Config};
use clap::Parser;

fn start(data: &std::path::Path, extra_env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aetherd"));
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--log-format")
        .arg("json");
    cmd.env_remove("AETHER_LISTEN")
        .env_remove("AETHER_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines.next().expect("aetherd exited early").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = v["fields"]["addr"].as_str() {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

async fn create_session(client: &reqwest::Client, addr: &str, token: &str) -> String {
    let resp = client
        .post(format!("http://{addr}/v1/sessions"))
        .bearer_auth(token)
        .json(&serde_json::json!({}));
    let created: serde_json::Value = resp.send().await.unwrap().json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn first_start_token_file_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (child, addr) = start(&data, &[]);
    let token_path = data.join("admin.token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let id = create_session(&client, &addr, &token).await;
    let put = client
        .put(format!("http://{addr}/v1/sessions/{id}/files/kept"))
        .bearer_auth(&token)
        .body("acknowledged");
    assert_eq!(put.send().await.unwrap().status(), 200);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "graceful exit: {:?}", output.status);

    // Restart on the same data: same token, the write is there.
    let (mut child, addr) = start(&data, &[]);
    let got = client
        .get(format!("http://{addr}/v1/sessions/{id}/files/kept"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "acknowledged");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn config_precedence_flags_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aether.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1111\"\nmax_json_body = 5\nlog_level = \"debug\"\n",
    )
    .unwrap();
    let cli = Cli::try_parse_from([
        "aetherd",
        "--config",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:3333",
    ])
    .unwrap();
    let c = Config::resolve(cli).unwrap();
    assert_eq!(c.listen.port(), 3333, "flag wins over file");
    assert_eq!(c.max_json_body, 5, "file wins over default");
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.data_dir, std::path::PathBuf::from("./aether-data"), "default");

    std::fs::write(&file, "listen = \"127.0.0.1:1111\"\nbogus = 1\n").unwrap();
    let cli = Cli::try_parse_from(["aetherd", "--config", file.to_str().unwrap()]).unwrap();
    let err = Config::resolve(cli).unwrap_err().to_string();
    assert!(err.contains("bogus"), "unknown keys are rejected: {err}");
}

#[test]
fn git_import_limits_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aether.toml");
    std::fs::write(&file, "import_timeout_secs = 90\nmax_import_bytes = 5000\n").unwrap();
    let cli = Cli::try_parse_from([
        "aetherd",
        "--config",
        file.to_str().unwrap(),
        "--max-import-bytes",
        "7000",
    ])
    .unwrap();
    let c = Config::resolve(cli).unwrap();
    let import = c.git_import();
    assert_eq!(
        import.fetch_timeout,
        std::time::Duration::from_secs(90),
        "from the file"
    );
    assert_eq!(import.max_bytes, 7000, "the flag wins over the file");
    let d = Config::default().git_import();
    assert_eq!((d.fetch_timeout.as_secs(), d.max_bytes), (3600, 64 << 30), "defaults");
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (child, addr) = start(&data, &[]);
    let token = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let client = reqwest::Client::new();
    let id = create_session(&client, &addr, &token).await;

    // A streamed upload: half now, the rest after the server was told to stop.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let upload = tokio::spawn({
        let client = client.clone();
        let url = format!("http://{addr}/v1/sessions/{id}/files/inflight");
        let token = token.clone();
        async move {
            client
                .put(url)
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tx.send(Ok(vec![b'a'; 100_000])).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.send(Ok(vec![b'b'; 100_000])).await.unwrap();
    drop(tx);
    assert_eq!(upload.await.unwrap().unwrap(), 200, "the upload in flight completed");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success());

    let (mut child, addr) = start(&data, &[]);
    let got = client
        .get(format!("http://{addr}/v1/sessions/{id}/files/inflight"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let bytes = got.bytes().await.unwrap();
    assert_eq!(bytes.len(), 200_000);
    assert!(bytes[..100_000].iter().all(|b| *b == b'a') && bytes[100_000..].iter().all(|b| *b == b'b'));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn walk_limits_are_configurable_and_the_depth_follows_the_path_limit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("aether.toml");
    std::fs::write(
        &file,
        "max_walk_entries = 5000\nmax_list_tree_entries = 70\nmax_path_len = 1001\n",
    )
    .unwrap();
    let cli = Cli::try_parse_from(["aetherd", "--config", file.to_str().unwrap()]).unwrap();
    let c = Config::resolve(cli).unwrap();
    let limits = c.engine_config().limits;
    assert_eq!(limits.max_walk_entries, 5000);
    assert_eq!(c.max_list_tree_entries, 70);
    assert_eq!(
        limits.max_tree_depth, 501,
        "the deepest tree whose paths fit in 1001 bytes"
    );
    let cli = Cli::try_parse_from(["aetherd", "--config", file.to_str().unwrap(), "--max-tree-depth", "64"]).unwrap();
    assert_eq!(Config::resolve(cli).unwrap().engine_config().limits.max_tree_depth, 64);
    let d = Config::default();
    let limits = d.engine_config().limits;
    assert_eq!(
        (limits.max_tree_depth, limits.max_walk_entries, d.max_list_tree_entries),
        (2048, 10_000_000, 100_000),
        "defaults"
    );
}
