//! Failures: one error line, one hint line, and the documented exit code.

use crate::env::TestEnv;
use crate::snap;

#[test]
fn error_paths_and_exit_codes() {
    let env = TestEnv::new();
    let id = env.new_session();
    std::fs::write(env.home().join("f"), "x").unwrap();
    env.ok(&["fs", "put", &id, "f", "dir/f"]);
    let mut log = String::new();
    let unknown = "0000000000000000000000000z";
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["session", "show", unknown], 3),
        (vec!["session", "show", unknown, "--json"], 3),
        (vec!["fs", "cat", &id, "nope.txt"], 3),
        (vec!["fs", "put", &id, "f", "../escape"], 2),
        (vec!["fs", "mkdir", &id, "dir"], 6),
        (vec!["fs", "rm", &id, "dir"], 6),
        (vec!["fs", "chmod", &id, "999", "dir/f"], 2),
        (vec!["fs", "put", &id, "missing-local-file", "x"], 3),
        (vec!["session", "label", &id, "novalue"], 2),
        (vec!["session", "create", "--from-git", "/nonexistent/repo.git"], 3),
        (vec!["session", "frobnicate"], 2),
        (vec!["fs", "put", &id], 2),
    ];
    for (args, code) in cases {
        let r = env.step(&mut log, &args);
        assert_eq!(r.code, code, "aether {}: {}", args.join(" "), r.transcript());
    }
    // A bad token.
    let mut cmd = env.bare(&["session", "list"]);
    cmd.env("AETHER_URL", &env.url).env("AETHER_TOKEN", "aet_wrong");
    let r = crate::env::run(cmd);
    assert_eq!(r.code, 4);
    log.push_str(&format!(
        "$ AETHER_TOKEN=aet_wrong aether session list\n{}\n",
        r.transcript()
    ));
    // No token at all against a remote-looking server is also an auth failure.
    let mut cmd = env.bare(&["session", "list"]);
    cmd.env("AETHER_URL", &env.url);
    let r = crate::env::run(cmd);
    log.push_str(&format!("$ aether session list  # no token\n{}\n", r.transcript()));
    assert_eq!(r.code, 4);
    // The server is down.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = format!("http://127.0.0.1:{port}");
    let mut cmd = env.bare(&["session", "list", "--server", &down, "--token", "t"]);
    cmd.env("AETHER_URL", &env.url);
    let r = crate::env::run(cmd);
    log.push_str(&format!(
        "$ aether session list --server DOWN\n{}\n",
        r.transcript().replace(&down, "[DOWN]")
    ));
    assert_eq!(r.code, 5);
    let mut cmd = env.bare(&["session", "list", "--server", &down, "--json"]);
    cmd.env("AETHER_TOKEN", "t");
    let r = crate::env::run(cmd);
    log.push_str(&format!(
        "$ aether session list --server DOWN --json\n{}\n",
        r.transcript().replace(&down, "[DOWN]")
    ));
    assert_eq!(r.code, 5);
    snap!(&env, "error_paths_and_exit_codes", log);
}

#[test]
fn a_local_read_error_cancels_the_upload_instead_of_committing_a_short_file() {
    let env = TestEnv::new();
    let id = env.new_session();
    // Opening succeeds, reading fails (EIO at offset 0).
    let r = env.run(&["fs", "put", &id, "/proc/self/mem", "short.bin"]);
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(
        r.stderr.starts_with("error: reading /proc/self/mem failed"),
        "{}",
        r.stderr
    );
    let stat = env.run(&["fs", "stat", &id, "short.bin"]);
    assert_eq!(stat.code, 3, "nothing may be committed: {}", stat.transcript());
}
