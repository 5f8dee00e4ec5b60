//! Which backend holds each store is configuration (`--metadata-store`, `--object-store`,
//! `--chunk-store`): a throwaway server keeps metadata and chunks in memory, and a store this
//! build does not know stops the server at start with a message naming it.

use std::process::Command;

use crate::process::Aetherd;

#[tokio::test]
async fn memory_stores_serve_a_session_and_leave_no_metadata_or_chunks_on_disk() {
    let server = Aetherd::start(&["--metadata-store", "memory:", "--chunk-store", "memory:"]);
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", server.admin);
    let created: serde_json::Value = client
        .post(format!("{}/v1/sessions", server.base()))
        .header("authorization", &auth)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("a session id").to_owned();
    // Large enough for the chunk store (the default threshold is 1 MiB).
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    let url = format!("{}/v1/sessions/{id}/files/big.bin", server.base());
    let put = client
        .put(&url)
        .header("authorization", &auth)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let got = client
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got[..] == big[..], "the bytes read back differ");
    let data = server.data_dir();
    assert!(!data.join("meta.db").exists(), "metadata went to meta.db");
    assert!(
        !data.join("chunks").exists() || std::fs::read_dir(data.join("chunks")).unwrap().next().is_none(),
        "chunks went to disk"
    );
    assert!(
        data.join("objects.git").exists(),
        "git objects stay in the data directory"
    );
}

#[test]
fn an_unknown_store_stops_the_server_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aetherd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--metadata-store", "postgres://db/aether"])
        .env_remove("AETHER_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "aetherd started with an unknown store");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("postgres"), "the message names the store: {text}");
}
