//! `aether session create --from-dir` keeps what the directory holds: symlink targets as they
//! are (`../.././x`, `//abs//path`, `subdir/.`, over 100 bytes), every mode bit, empty
//! directories, a nested `.git`; a fifo is left out with a warning. Read back with `aether fs`
//! and through `aether export` extracted by GNU tar.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::env::TestEnv;

fn links() -> Vec<(&'static str, String)> {
    vec![
        ("links/dotdot", "../.././x".into()),
        ("links/abs", "//abs//path".into()),
        ("links/dot", "a/./b".into()),
        ("links/slash", "d/".into()),
        ("links/subdot", "subdir/.".into()),
        ("links/inside", "subdir//inside".into()),
        ("links/dangling", "no/such/file".into()),
        ("links/long", format!("{}./far//target", "../".repeat(40))),
    ]
}

/// (path, mode, content; `None` for a directory).
const MODED: &[(&str, u32, Option<&str>)] = &[
    ("m", 0o755, None),
    ("m/600", 0o600, Some("secret")),
    ("m/444", 0o444, Some("read only")),
    ("m/4755", 0o4755, Some("suid")),
    ("m/private", 0o700, None),
    ("m/private/inner", 0o640, Some("in")),
    ("m/empty700", 0o700, None),
    (".git", 0o755, None),
    (".git/HEAD", 0o644, Some("ref: refs/heads/main\n")),
    (".git/refs", 0o755, None),
    (".git/refs/heads", 0o755, None),
];

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("links")).unwrap();
    for (name, target) in links() {
        std::os::unix::fs::symlink(&target, root.join(name)).unwrap();
    }
    for (path, _, content) in MODED {
        match content {
            None => std::fs::create_dir_all(root.join(path)).unwrap(),
            Some(c) => std::fs::write(root.join(path), c).unwrap(),
        }
    }
    // Modes last, deepest first, so a read-only directory does not stop its own setup.
    for (path, mode, _) in MODED.iter().rev() {
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
}

#[test]
fn create_from_dir_keeps_targets_modes_empty_dirs_and_a_nested_git() {
    let env = TestEnv::new();
    let tree = env.home().join("tree");
    make_tree(&tree);
    let created = env.ok(&["session", "create", "--from-dir", "tree", "--json"]);
    assert!(
        created.stderr.contains("left out") && created.stderr.contains("pipe") && created.stderr.contains("fifo"),
        "the fifo is named in a warning: {}",
        created.transcript()
    );
    let id = created.json()["id"].as_str().unwrap().to_owned();

    let listing = env.ok(&["fs", "ls", &id, "-r", "--json"]).json();
    let entries: BTreeMap<String, serde_json::Value> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    for (name, target) in links() {
        let e = &entries[name];
        assert_eq!(e["kind"], "symlink", "{name}");
        assert_eq!(e["symlink_target"], target.as_str(), "{name}: the target as it was");
    }
    for (path, mode, content) in MODED {
        let e = entries
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing: {listing}"));
        assert_eq!(e["mode"], *mode, "mode of {path}");
        assert_eq!(e["kind"], if content.is_some() { "file" } else { "dir" }, "{path}");
        if let Some(c) = content {
            assert_eq!(env.ok(&["fs", "cat", &id, path]).stdout, *c, "{path}");
        }
    }
    assert!(!entries.contains_key("pipe"), "a fifo is not stored");

    // Exported and extracted by GNU tar: the same targets and modes on disk.
    env.ok(&["export", &id, "-o", "out.tar"]);
    let out = env.home().join("extracted");
    std::fs::create_dir_all(&out).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xpf")
        .arg(env.home().join("out.tar"))
        .arg("-C")
        .arg(&out)
        .status()
        .expect("GNU tar must be installed to run this test");
    assert!(status.success());
    for (name, target) in links() {
        let got = std::fs::read_link(out.join(name)).unwrap();
        assert_eq!(got.as_os_str().as_bytes(), target.as_bytes(), "{name} after export");
    }
    for (path, mode, _) in MODED {
        let meta = std::fs::symlink_metadata(out.join(path)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{path} after export");
    }
}
