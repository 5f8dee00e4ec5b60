//! A closed standard output (`aether ... | head -1`): every command ends quietly, with no panic
//! and no backtrace, with the exit code a shell gives a process ended by SIGPIPE (141).

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::env::TestEnv;

/// Wait up to `limit` for `child` to exit; its exit code and stderr.
fn finish(mut child: std::process::Child, limit: Duration, mut poke: impl FnMut()) -> (Option<i32>, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < limit,
            "the command did not end after its stdout closed"
        );
        poke();
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

fn assert_quiet(what: &str, (code, stderr): (Option<i32>, String)) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{what}: {stderr}"
    );
    assert!(matches!(code, Some(0 | 141)), "{what}: exit {code:?}: {stderr}");
}

#[test]
fn watch_into_a_pipe_that_closes_ends_quietly() {
    let env = TestEnv::new();
    let id = env.new_session();
    let mut child = env
        .cmd(&["session", "watch", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    lines.read_line(&mut first).unwrap();
    assert!(first.contains("created"), "{first}");
    drop(lines); // `head -1` is done
    let mut n = 0;
    let result = finish(child, Duration::from_secs(20), || {
        // Each new event makes the watch write again, into the closed pipe.
        n += 1;
        env.ok(&["session", "label", &id, &format!("n={n}")]);
    });
    assert_quiet("session watch", result);
}

#[test]
fn downloads_and_listings_into_a_pipe_that_closes_end_quietly() {
    let env = TestEnv::new();
    let id = env.new_session();
    let big = env.home().join("big.bin");
    std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
    env.ok(&["fs", "put", &id, big.to_str().unwrap(), "big.bin"]);
    for args in [
        vec!["fs", "cat", &id, "big.bin"],
        vec!["export", &id, "-o", "-"],
        vec!["session", "watch", &id, "--json"],
    ] {
        let mut child = env
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut some = [0u8; 10];
        out.read_exact(&mut some)
            .unwrap_or_else(|e| panic!("{args:?}: no output: {e}"));
        drop(out); // `head -c 10` is done
        let mut n = 0;
        let result = finish(child, Duration::from_secs(20), || {
            n += 1;
            env.ok(&["session", "label", &id, &format!("n={n}")]);
        });
        assert_quiet(&args.join(" "), result);
    }
}
