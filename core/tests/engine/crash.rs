//! Kill a writer with SIGKILL mid-load; every write it acknowledged must be there on reopen.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aether_core::{Engine, SessionId};

use crate::common::*;

struct Run {
    session: String,
    /// (file number, blake3 of the content the writer acknowledged)
    acked: Vec<(u64, String)>,
    checkpoints: Vec<(u64, u64)>,
}

/// Start the writer, let it acknowledge at least `min_acks` writes, then SIGKILL it.
fn run_and_kill(data: &std::path::Path, session: &str, start: u64, min_acks: usize) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aether-crash-writer"))
        .arg(data)
        .arg(session)
        .arg(start.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut run = Run {
        session: String::new(),
        acked: Vec::new(),
        checkpoints: Vec::new(),
    };
    let mut killed = false;
    while let Some(Ok(line)) = lines.next() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["session", id] => run.session = (*id).to_owned(),
            ["ack", n, hash] => run.acked.push((n.parse().unwrap(), (*hash).to_owned())),
            ["cp", number, n] => run.checkpoints.push((number.parse().unwrap(), n.parse().unwrap())),
            _ => panic!("unexpected writer output: {line}"),
        }
        if !killed && run.acked.len() >= min_acks {
            // SIGKILL: no destructors, no flush, no chance to finish anything in flight.
            child.kill().expect("kill -9");
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "writer exited on its own: {status:?}");
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = run_and_kill(&data, "new", 0, 150);
    assert!(!first.session.is_empty());
    // A second writer continues in the same session after the crash, and is killed too.
    let next = first.acked.last().unwrap().0 + 1;
    let second = run_and_kill(&data, &first.session, next, 150);

    let mut cfg = config(dir.path());
    small_chunks(&mut cfg);
    let engine = Engine::open(cfg).await.unwrap();
    let id: SessionId = first.session.parse().unwrap();
    let mut acked_hash = std::collections::HashMap::new();
    for (n, hash) in first.acked.iter().chain(&second.acked) {
        let path = format!("d{}/f{n}", n % 13);
        let got = engine
            .read(&id, &path, 0, None, None)
            .await
            .unwrap_or_else(|e| panic!("acked {path} lost: {e}"));
        assert_eq!(blake3::hash(&got).to_string(), *hash, "content of acked {path}");
        acked_hash.insert(*n, hash.clone());
    }
    let numbers: Vec<u64> = engine
        .list_checkpoints(&id)
        .await
        .unwrap()
        .iter()
        .map(|c| c.number)
        .collect();
    for (number, n) in first.checkpoints.iter().chain(&second.checkpoints) {
        assert!(numbers.contains(number), "acked checkpoint {number} lost");
        let path = format!("d{}/f{n}", n % 13);
        let at = engine
            .read(&id, &path, 0, None, Some(&format!("checkpoints/{number}")))
            .await
            .unwrap();
        assert_eq!(
            blake3::hash(&at).to_string(),
            acked_hash[n],
            "{path} at checkpoint {number}"
        );
    }
    // The store is still writable after two crashes.
    put(&engine, &id, "after", b"ok").await;
    assert_eq!(get(&engine, &id, "after").await, b"ok");
}
