//! A repository cloned inside a mount keeps its stat data in the next mount (issue 33, item 2):
//! the real `git clone` writes a work tree and an index in mount A; a second mount while A is
//! mounted and a remount after A is gone show, for every index entry, the inode number, mtime,
//! ctime and size git recorded, so `git status` there re-reads no file. Before, the server
//! stamped every upload with its own time and every entry differed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available, git, ok};

/// The stat data of every index entry as `git ls-files --debug` prints it: path -> (ctime,
/// mtime, ino, uid, gid, size), each as git stores it (32-bit, "sec:nsec" for times).
fn index_stat(repo: &Path) -> BTreeMap<String, [String; 6]> {
    let out = ok(&mut git(repo, &["ls-files", "--debug"]), || {
        "git ls-files --debug".into()
    });
    let mut entries = BTreeMap::new();
    let mut lines = out.lines();
    while let Some(path) = lines.next() {
        let mut field = |want: &str| -> Vec<String> {
            let line = lines.next().unwrap_or_else(|| panic!("no {want} line for {path}"));
            assert!(line.trim_start().starts_with(want), "{path}: {line:?} is not {want}");
            line.split_whitespace()
                .collect::<Vec<_>>()
                .chunks(2)
                .map(|kv| kv[1].to_owned())
                .collect()
        };
        let ctime = field("ctime:");
        let mtime = field("mtime:");
        let dev_ino = field("dev:");
        let uid_gid = field("uid:");
        let size_flags = field("size:");
        entries.insert(
            path.to_owned(),
            [
                ctime[0].clone(),
                mtime[0].clone(),
                dev_ino[1].clone(),
                uid_gid[0].clone(),
                uid_gid[1].clone(),
                size_flags[0].clone(),
            ],
        );
    }
    entries
}

/// The same fields of what the file system shows for each of `paths` in `repo` now.
fn shown(repo: &Path, paths: impl Iterator<Item = String>) -> BTreeMap<String, [String; 6]> {
    paths
        .map(|p| {
            let m = fs::symlink_metadata(repo.join(&p)).unwrap();
            let fields = [
                format!("{}:{}", m.ctime() as u32, m.ctime_nsec() as u32),
                format!("{}:{}", m.mtime() as u32, m.mtime_nsec() as u32),
                (m.ino() as u32).to_string(),
                m.uid().to_string(),
                m.gid().to_string(),
                (m.size() as u32).to_string(),
            ];
            (p, fields)
        })
        .collect()
}

/// Index entries whose stat data differ from what the file system shows: "path: field".
fn differing(repo: &Path) -> Vec<String> {
    let index = index_stat(repo);
    let now = shown(repo, index.keys().cloned());
    let names = ["ctime", "mtime", "ino", "uid", "gid", "size"];
    let mut out = Vec::new();
    for (path, want) in &index {
        let got = &now[path];
        for i in 0..names.len() {
            if want[i] != got[i] {
                out.push(format!(
                    "{path}: {} {} in the index, {} shown",
                    names[i], want[i], got[i]
                ));
            }
        }
    }
    out
}

#[test]
fn a_repository_cloned_in_a_mount_keeps_its_stat_data_in_the_next_mount() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    // A source repository with a few hundred files in nested directories and a symlink.
    let src = env.home().join("src");
    for d in 0..8 {
        let dir = src.join(format!("dir{d}/sub"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..40 {
            fs::write(dir.join(format!("f{f}.c")), format!("int f{d}_{f};\n").repeat(f + 1)).unwrap();
        }
    }
    std::os::unix::fs::symlink("dir0/sub/f0.c", src.join("link")).unwrap();
    ok(&mut git(&src, &["init", "-q", "-b", "main"]), || "git init".into());
    ok(&mut git(&src, &["add", "-A"]), || "git add".into());
    ok(&mut git(&src, &["commit", "-q", "-m", "base"]), || "git commit".into());

    let id = env.new_session();
    let a = Mount::new(&env, &id, &env.home().join("a"));
    ok(
        &mut git(
            a.root(),
            &["clone", "-q", "--no-hardlinks", src.to_str().unwrap(), "clone"],
        ),
        || format!("git clone into the mount: {}", a.log()),
    );
    let repo_a = a.path("clone");
    assert_eq!(differing(&repo_a), Vec::<String>::new(), "in the mount that cloned");
    let entries = index_stat(&repo_a).len();
    assert_eq!(entries, 8 * 40 + 1);
    // Everything A wrote is on the server before a second mount looks.
    fs::File::open(a.root()).unwrap().sync_all().unwrap();

    let b = Mount::new(&env, &id, &env.home().join("b"));
    assert_eq!(
        differing(&b.path("clone")),
        Vec::<String>::new(),
        "in a second mount while the first is mounted"
    );
    b.unmount();
    a.unmount();

    let again = Mount::new(&env, &id, &env.home().join("a"));
    let repo = again.path("clone");
    assert_eq!(differing(&repo), Vec::<String>::new(), "after a remount");
    // git agrees: nothing to refresh, nothing changed.
    let status = ok(&mut git(&repo, &["status", "--porcelain"]), || "git status".into());
    assert_eq!(status, "");
    again.unmount();
}
