//! Real tools working inside a real mount of a session: make and gcc build a C program, cargo
//! builds a crate with its target directory in the mount, and SQLite commits with fsync, then
//! reopens after an unmount and a fresh mount. Each test also reads the result back from the
//! server (REST) or through a fresh mount, so nothing passes on the kernel's caches alone.

use std::path::Path;
use std::time::Duration;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Node, Rest, fixtures, fuse_available, ok, output, step, timed};

const LIMIT: Duration = Duration::from_secs(240);

/// `cp -r` of a fixture directory into the mount (the real tool, as a person would).
fn copy_fixture(name: &str, to: &Path) {
    ok(
        timed(LIMIT, "cp")
            .arg("-r")
            .arg(fixtures().join("mount").join(name))
            .arg(to),
        String::new,
    );
}

#[test]
fn make_builds_and_runs_a_c_program_inside_the_mount() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    copy_fixture("hello-c", m.root());
    let src = m.path("hello-c");

    let made = step("make (clean build)", || {
        ok(timed(LIMIT, "make").current_dir(&src), || m.log())
    });
    assert!(
        made.contains("-c -o main.o main.c") && made.contains("-c -o greet.o greet.c"),
        "{made}"
    );
    let run = ok(timed(LIMIT, "./hello").arg("aether").current_dir(&src), || m.log());
    assert_eq!(run, "hello, aether, from C\nsum 5050\n");

    // Nothing changed: make sees every target newer than its sources (mtimes are consistent).
    let q = output(timed(LIMIT, "make").arg("-q").current_dir(&src));
    assert_eq!(q.status.code(), Some(0), "make -q after a build wants to rebuild");

    // One source changes: only its object and the program are rebuilt.
    std::fs::write(
        src.join("greet.c"),
        "#include <stdio.h>\n#include \"greet.h\"\n\nint greet(char *out, int len, const char *name) {\n    return snprintf(out, (size_t)len, \"hi again, %s\", name);\n}\n",
    )
    .unwrap();
    let remade = ok(timed(LIMIT, "make").current_dir(&src), || m.log());
    assert!(remade.contains("greet.c") && !remade.contains("main.c"), "{remade}");
    let run = ok(timed(LIMIT, "./hello").current_dir(&src), || m.log());
    assert_eq!(run, "hi again, world\nsum 5050\n");
    m.unmount();

    // The server has the program, executable; a fresh mount runs it and make finds nothing to do.
    let snap = Rest::new(&env).snapshot(&id);
    let Some(Node::File { mode, size, .. }) = snap.get("hello-c/hello") else {
        panic!(
            "the built program is not on the server: {:?}",
            snap.keys().collect::<Vec<_>>()
        );
    };
    assert_eq!(mode & 0o111, 0o111, "the program lost its exec bits: {mode:o}");
    assert!(*size > 1000, "{size}");
    let m = Mount::new(&env, &id, &env.home().join("m"));
    let run = ok(
        timed(LIMIT, "./hello").arg("again").current_dir(m.path("hello-c")),
        || m.log(),
    );
    assert_eq!(run, "hi again, again\nsum 5050\n");
    let q = output(timed(LIMIT, "make").arg("-q").current_dir(m.path("hello-c")));
    assert_eq!(
        q.status.code(),
        Some(0),
        "after a remount make wants to rebuild: mtimes did not survive in order"
    );
    ok(timed(LIMIT, "make").arg("clean").current_dir(m.path("hello-c")), || {
        m.log()
    });
    let mut left: Vec<String> = std::fs::read_dir(m.path("hello-c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["Makefile", "greet.c", "greet.h", "main.c"]);
    m.unmount();
    assert_eq!(
        env.run(&["fs", "stat", &id, "hello-c/hello"]).code,
        3,
        "make clean did not reach the server"
    );
}

#[test]
fn cargo_builds_and_runs_a_rust_crate_inside_the_mount() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    copy_fixture("hello-rs", m.root());
    let src = m.path("hello-rs");
    let target = m.path("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let build = || {
        let mut c = timed(LIMIT, &cargo);
        c.args(["build", "--offline"])
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CARGO_BUILD_TARGET_DIR");
        c
    };

    let out = step("cargo build (clean)", || output(&mut build()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo build failed:\n{stderr}\nmount log:\n{}",
        m.log()
    );
    assert!(stderr.contains("Compiling hello-rs"), "{stderr}");
    let exe = target.join("debug/hello-rs");
    let run = ok(timed(LIMIT, exe.to_str().unwrap()).arg("aether"), || m.log());
    assert_eq!(run, "hello, aether, from Rust\nsquares sum 385\n");

    // Built again without a change: cargo's fingerprints (mtimes, files) say it is fresh.
    let out = output(&mut build());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Compiling"), "a no-op build recompiled:\n{stderr}");

    // A change to one module rebuilds and the new program says so.
    std::fs::write(
        src.join("src/greet.rs"),
        "pub fn greet(name: &str) -> String {\n    format!(\"{name} says hi from Rust\")\n}\n",
    )
    .unwrap();
    let out = step("cargo build (one change)", || output(&mut build()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("Compiling hello-rs"),
        "{stderr}"
    );
    let run = ok(&mut timed(LIMIT, exe.to_str().unwrap()), || m.log());
    assert_eq!(run, "world says hi from Rust\nsquares sum 385\n");
    m.unmount();

    // The build really wrote into the session: the program is on the server, executable.
    let snap = Rest::new(&env).snapshot(&id);
    match snap.get("target/debug/hello-rs") {
        Some(Node::File { mode, .. }) => assert_eq!(mode & 0o111, 0o111, "{mode:o}"),
        other => panic!("target/debug/hello-rs on the server: {other:?}"),
    }
    assert!(
        snap.keys()
            .any(|p| p.starts_with("target/debug/build/hello-rs-") && p.ends_with("/out/squares.rs")),
        "the build script's output is not on the server"
    );
}

/// Rows, rows per transaction: 30 commits, each fsyncing the database and its journal.
const ROWS: &str = "600";
const BATCH: &str = "20";

#[test]
fn sqlite_commits_with_fsync_survive_unmount_and_remount() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let script = fixtures().join("mount/sqlite_rows.py");
    let py = |args: &[&str]| {
        let mut c = timed(LIMIT, "python3");
        c.arg(&script).args(args);
        c
    };
    let m = Mount::new(&env, &id, &env.home().join("m"));
    std::fs::create_dir(m.path("db")).unwrap();
    for mode in ["delete", "wal"] {
        let db = m.path(&format!("db/{mode}.db"));
        let db = db.to_str().unwrap();
        let wrote = step(&format!("sqlite {mode}: {ROWS} rows in commits of {BATCH}"), || {
            ok(&mut py(&["write", db, mode, ROWS, BATCH]), || m.log())
        });
        assert_eq!(wrote, format!("wrote {ROWS}\n"));
        assert_eq!(ok(&mut py(&["check", db, ROWS]), || m.log()), format!("ok {ROWS}\n"));
    }
    m.unmount();

    // A fresh mount, nothing cached in the kernel: the databases open and are whole.
    let m = Mount::new(&env, &id, &env.home().join("m"));
    let mut names: Vec<String> = std::fs::read_dir(m.path("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["delete.db", "wal.db"],
        "journal files left behind after a clean close"
    );
    for mode in ["delete", "wal"] {
        let db = m.path(&format!("db/{mode}.db"));
        let checked = ok(&mut py(&["check", db.to_str().unwrap(), ROWS]), || m.log());
        assert_eq!(checked, format!("ok {ROWS}\n"), "{mode}");
    }
    m.unmount();

    // The server's copy, read over REST into a local file, is a whole database too.
    let rest = Rest::new(&env);
    let files = rest.read_files(&id, &["db/delete.db".to_owned(), "db/wal.db".to_owned()]);
    for (path, bytes) in files {
        let local = env.home().join(path.replace('/', "-"));
        std::fs::write(&local, bytes).unwrap();
        let checked = ok(&mut py(&["check", local.to_str().unwrap(), ROWS]), String::new);
        assert_eq!(checked, format!("ok {ROWS}\n"), "{path} read over REST");
    }
}

/// A process that is killed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sqlite_commits_acknowledged_by_fsync_survive_a_killed_mount() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let script = fixtures().join("mount/sqlite_rows.py");
    let m = Mount::new(&env, &id, &env.home().join("m"));
    std::fs::create_dir(m.path("db")).unwrap();
    // Each writer commits every row with fsync, says so, and keeps its database open. DELETE
    // mode needs synchronous=EXTRA for the journal's deletion to be durable (directory fsync).
    let mut writers = Vec::new();
    for (mode, sync) in [("delete", "EXTRA"), ("wal", "FULL")] {
        let db = m.path(&format!("db/{mode}.db"));
        let mut child = timed(LIMIT, "python3")
            .arg(&script)
            .args(["write", db.to_str().unwrap(), mode, ROWS, BATCH, sync, "hold"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line, format!("wrote {ROWS}\n"), "{mode}: mount log:\n{}", m.log());
        writers.push(KillOnDrop(child));
    }
    // The mount process dies with both databases open: what fsync acknowledged is on the server.
    m.kill();
    drop(writers);

    let rest = Rest::new(&env);
    let on_server: Vec<String> = rest
        .tree(&id)
        .iter()
        .filter(|e| e["kind"] == "file")
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    let files = rest.read_files(&id, &on_server);
    let copy = env.home().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for (path, bytes) in &files {
        std::fs::write(copy.join(path.trim_start_matches("db/")), bytes).unwrap();
    }
    for mode in ["delete", "wal"] {
        let db = copy.join(format!("{mode}.db"));
        let mut c = timed(LIMIT, "python3");
        c.arg(&script).args(["check", db.to_str().unwrap(), ROWS]);
        let checked = ok(&mut c, || format!("files on the server: {on_server:?}"));
        assert_eq!(
            checked,
            format!("ok {ROWS}\n"),
            "{mode}: files on the server: {on_server:?}"
        );
    }
}
