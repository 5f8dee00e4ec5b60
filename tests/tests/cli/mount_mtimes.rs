//! Mtimes set by tools in a mount are the session's (issue 33): the real `tar -x` of an archive
//! with old mtimes, `touch -d` with nanoseconds and a built Makefile tree in a mount, then a
//! second mount, a remount, a fork, a `fork --at` and a restore of a checkpoint show every
//! mtime to the nanosecond, and `make -n` there has nothing to do.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available, ok};

/// Path -> mtime (ns) of every entry below `root` (symlinks' own), the root excluded.
fn mtimes(root: &Path) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, m.mtime() * 1_000_000_000 + m.mtime_nsec());
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// What `make -n` in `dir` would run: no line for a built tree (make's own "Nothing to be done"
/// note aside).
fn make_n(dir: &Path) -> String {
    let out = ok(Command::new("make").arg("-n").current_dir(dir), || {
        format!("make -n in {}", dir.display())
    });
    out.lines()
        .filter(|l| !l.starts_with("make"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn touch_d(path: &Path, when: &str) {
    ok(Command::new("touch").args(["-h", "-d", when]).arg(path), || {
        format!("touch -d {when} {}", path.display())
    });
}

/// A small project built with make, every file with its own old time (sources oldest, the
/// program newest), as a checkout someone built and archived.
fn write_project(dir: &Path) {
    fs::create_dir_all(dir.join("src")).unwrap();
    let mut rules = String::from("all: prog\nprog: src/a.o src/b.o src/c.o\n\tcat $^ > $@\n");
    for name in ["a", "b", "c"] {
        fs::write(dir.join(format!("src/{name}.c")), format!("int {name};\n")).unwrap();
        rules.push_str(&format!("src/{name}.o: src/{name}.c\n\tcp $< $@\n"));
    }
    fs::write(dir.join("Makefile"), rules).unwrap();
    ok(Command::new("make").current_dir(dir), || "make".into());
    touch_d(&dir.join("Makefile"), "2019-06-01 00:00:00 UTC");
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        touch_d(
            &dir.join(format!("src/{name}.c")),
            &format!("2020-01-0{} 10:00:00 UTC", i + 1),
        );
        touch_d(
            &dir.join(format!("src/{name}.o")),
            &format!("2020-02-0{} 10:00:00 UTC", i + 1),
        );
    }
    touch_d(&dir.join("prog"), "2020-03-01 10:00:00 UTC");
    touch_d(&dir.join("src"), "2020-03-02 10:00:00 UTC");
    touch_d(dir, "2020-03-03 10:00:00 UTC");
    assert_eq!(make_n(dir), "", "the project is built");
}

#[test]
fn tar_x_and_touch_d_mtimes_survive_mounts_forks_and_restores_and_make_has_nothing_to_do() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    // An archive whose entries have old mtimes (tar keeps whole seconds): a tree, a symlink,
    // and a built project.
    let src = env.home().join("src");
    fs::create_dir_all(src.join("tree/sub")).unwrap();
    for (i, name) in ["tree/one", "tree/sub/two", "tree/sub/three"].iter().enumerate() {
        fs::write(src.join(name), format!("content {i}\n")).unwrap();
        touch_d(&src.join(name), &format!("2003-0{}-1{} 12:34:56 UTC", i + 1, i + 1));
    }
    std::os::unix::fs::symlink("one", src.join("tree/link")).unwrap();
    touch_d(&src.join("tree/link"), "2004-04-04 04:04:04 UTC");
    for d in ["tree/sub", "tree"] {
        touch_d(&src.join(d), "2002-02-02 02:02:02 UTC");
    }
    write_project(&src.join("proj"));
    let archive = env.home().join("tree.tar");
    ok(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&src)
            .args(["tree", "proj"]),
        || "tar -c".into(),
    );
    let expected = mtimes(&src);

    let id = env.new_session();
    let dir = env.home().join("m");
    let m = Mount::new(&env, &id, &dir);
    ok(
        Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(m.root()),
        || format!("tar -x: {}", m.log()),
    );
    // Nanoseconds with touch -d.
    fs::write(m.path("ns"), b"ns").unwrap();
    touch_d(&m.path("ns"), "2011-11-11 11:11:11.123456789 UTC");
    let seen = mtimes(m.root());
    let mut want = expected.clone();
    want.insert("ns".into(), 1_321_009_871_123_456_789);
    assert_eq!(seen, want, "tar -x and touch -d in the mount");
    assert_eq!(make_n(&m.path("proj")), "", "make -n in the mount itself");
    // A second mount of the same session while the first is still there.
    fs::File::open(m.root()).unwrap().sync_all().unwrap();
    let second = Mount::new(&env, &id, &env.home().join("second"));
    assert_eq!(mtimes(second.root()), seen, "a second mount");
    assert_eq!(make_n(&second.path("proj")), "", "make -n in a second mount");
    second.unmount();
    m.unmount();

    let m = Mount::new(&env, &id, &dir);
    assert_eq!(mtimes(m.root()), seen, "a remount");
    m.unmount();

    env.ok(&["checkpoint", "create", &id]);
    let fork = env.ok(&["session", "fork", &id, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = Mount::new(&env, &fork, &env.home().join("fork"));
    assert_eq!(mtimes(f.root()), seen, "a fork");
    assert_eq!(make_n(&f.path("proj")), "", "make -n in a fork");
    f.unmount();

    // Change everything, then go back.
    let m = Mount::new(&env, &id, &dir);
    ok(Command::new("touch").arg(m.path("ns")).arg(m.path("tree/one")), || {
        "touch".into()
    });
    fs::write(m.path("proj/src/b.c"), b"int b2;\n").unwrap();
    m.unmount();

    let at = env
        .ok(&["session", "fork", &id, "--at", "checkpoints/1", "--json"])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = Mount::new(&env, &at, &env.home().join("fork-at"));
    assert_eq!(mtimes(f.root()), seen, "fork --at");
    assert_eq!(make_n(&f.path("proj")), "", "make -n in fork --at");
    f.unmount();

    env.ok(&["checkpoint", "restore", &id, "checkpoints/1"]);
    let m = Mount::new(&env, &id, &dir);
    assert_eq!(mtimes(m.root()), seen, "a restore");
    assert_eq!(make_n(&m.path("proj")), "", "make -n after a restore");
    m.unmount();
}
