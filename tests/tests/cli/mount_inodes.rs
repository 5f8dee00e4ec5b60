//! Stable inode numbers through `aether mount` against a real aetherd (issue 33): a remount, a
//! second mount at the same time, a fork's mount and a mount after a checkpoint restore show
//! the same `st_ino` for every entry of a tree with more than 8,192 entries in one directory,
//! however the mount is walked; and a file written through a mount keeps its number in the next.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available};

/// `st_ino` of every entry below the root, by path.
type Inos = BTreeMap<String, u64>;

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().to_string_lossy().into_owned()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut e: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    e.sort();
    e
}

/// Depth first, each directory in name order, or (`reverse`) the other way round: the
/// directories are first listed in another order.
fn walk(root: &Path, reverse: bool) -> Inos {
    fn visit(root: &Path, dir: &Path, reverse: bool, out: &mut Inos) {
        let mut e = entries(dir);
        if reverse {
            e.reverse();
        }
        for p in e {
            let md = std::fs::symlink_metadata(&p).unwrap();
            out.insert(rel(root, &p), md.ino());
            if md.is_dir() {
                visit(root, &p, reverse, out);
            }
        }
    }
    let mut out = Inos::new();
    visit(root, root, reverse, &mut out);
    out
}

/// Threads taking directories from one queue, as git's threaded preload does.
fn walk_parallel(root: &Path, threads: usize) -> Inos {
    let queue = Mutex::new((vec![root.to_path_buf()], 0usize));
    let out = Mutex::new(Inos::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (queue, out) = (&queue, &out);
            s.spawn(move || {
                loop {
                    let next = {
                        let mut q = queue.lock().unwrap();
                        match q.0.pop() {
                            Some(d) => {
                                q.1 += 1;
                                Some(d)
                            }
                            None if q.1 == 0 => return,
                            None => None,
                        }
                    };
                    let Some(dir) = next else {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        continue;
                    };
                    let mut e = entries(&dir);
                    if t % 2 == 1 {
                        e.reverse();
                    }
                    let mut found = Vec::new();
                    for p in e {
                        let md = std::fs::symlink_metadata(&p).unwrap();
                        out.lock().unwrap().insert(rel(root, &p), md.ino());
                        if md.is_dir() {
                            found.push(p);
                        }
                    }
                    let mut q = queue.lock().unwrap();
                    q.0.extend(found);
                    q.1 -= 1;
                }
            });
        }
    });
    out.into_inner().unwrap()
}

fn assert_same(want: &Inos, got: &Inos, what: &str, log: &dyn Fn() -> String) {
    assert_eq!(want.len(), got.len(), "{what}: the same entries");
    let differ: Vec<String> = want
        .iter()
        .filter(|(p, ino)| got.get(*p) != Some(*ino))
        .map(|(p, ino)| format!("{p}: {ino} then {:?}", got.get(p)))
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} entries show another st_ino, e.g. {:?}\nmount log:\n{}",
        differ.len(),
        want.len(),
        &differ[..differ.len().min(5)],
        log()
    );
}

/// A checkout's shape: one directory of 8,300 files, nested directories of 8,400 more (more
/// than a first listing brings) and symlinks. (An import keeps no hard links: they become
/// copies; the test makes one through a mount.)
fn make_tree(root: &Path) {
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..8_300 {
        std::fs::write(big.join(format!("f{i:05}")), format!("{i}\n")).unwrap();
    }
    for a in 0..6 {
        for b in 0..4 {
            let d = root.join(format!("nest/n{a}/m{b}"));
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..350 {
                std::fs::write(d.join(format!("g{i:03}")), format!("{a} {b} {i}\n")).unwrap();
            }
        }
        std::os::unix::fs::symlink("../../big", root.join(format!("nest/n{a}/up"))).unwrap();
    }
}

#[test]
fn remounts_second_mounts_forks_and_restores_show_the_same_inode_numbers() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    make_tree(&env.home().join("tree"));
    let id = env.ok(&["session", "create", "--from-dir", "tree", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A file and a hard link made through a mount.
    let a = Mount::new(&env, &id, &env.home().join("a"));
    std::fs::create_dir(a.path("made")).unwrap();
    std::fs::write(a.path("made/by-a.txt"), b"written through a mount\n").unwrap();
    std::fs::hard_link(a.path("big/f00007"), a.path("nest/n3/hard")).unwrap();
    let made = std::fs::metadata(a.path("made/by-a.txt")).unwrap().ino();
    a.unmount();

    // The next mount, walked in name order.
    let a = Mount::new(&env, &id, &env.home().join("a"));
    let want = walk(a.root(), false);
    assert!(want.len() > 16_000, "{} entries", want.len());
    assert_eq!(
        want["made/by-a.txt"], made,
        "a file keeps the number the mount that made it gave it"
    );
    assert_eq!(want["big/f00007"], want["nest/n3/hard"], "hard links are one inode");

    // A second mount at the same time, walked the other way round.
    let b = Mount::new(&env, &id, &env.home().join("b"));
    assert_same(&want, &walk(b.root(), true), "a second mount", &|| b.log());
    b.unmount();
    a.unmount();

    // A remount walked by threads.
    let a = Mount::new(&env, &id, &env.home().join("a"));
    assert_same(&want, &walk_parallel(a.root(), 6), "a remount", &|| a.log());
    a.unmount();

    // A fork's mount.
    let fork = env.ok(&["session", "fork", &id, "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let f = Mount::new(&env, &fork, &env.home().join("f"));
    assert_same(&want, &walk_parallel(f.root(), 4), "a fork's mount", &|| f.log());
    f.unmount();

    // A checkpoint restored after a change: the same numbers again.
    env.ok(&["checkpoint", "create", &id]);
    let a = Mount::new(&env, &id, &env.home().join("a"));
    std::fs::remove_file(a.path("big/f00100")).unwrap();
    std::fs::write(a.path("big/extra"), b"after the checkpoint\n").unwrap();
    a.unmount();
    env.ok(&["checkpoint", "restore", &id, "checkpoints/1"]);
    let a = Mount::new(&env, &id, &env.home().join("a"));
    assert_same(&want, &walk(a.root(), true), "a mount after a restore", &|| a.log());
    a.unmount();
}
