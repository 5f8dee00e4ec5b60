//! Batched loading through a real mount against a real aetherd (`MountService.ListDirs`): a
//! cold walk of a fresh mount lists directories below the one asked for, and a cold read of a
//! small file brings its small siblings' bytes. What the tools see must be exactly the
//! server's bytes, and a file changed on the server after its bytes came in a batch must be
//! read fresh.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Node, assert_same_tree, eventually, fuse_available, snapshot};

/// Files only, by path: (size, digest). The import does not keep directory modes exactly.
fn files(tree: &BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.iter()
        .filter_map(|(p, n)| match n {
            Node::File { size, digest, .. } => Some((
                p.clone(),
                Node::File {
                    mode: 0,
                    size: *size,
                    digest: *digest,
                },
            )),
            Node::Symlink { .. } | Node::Special { .. } => Some((p.clone(), n.clone())),
            Node::Dir { .. } => None,
        })
        .collect()
}

/// Content of file `i` of directory `d`: sizes from empty to over the inline cap (256 KiB).
fn content(d: usize, i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 17,
        2 => 3000 + d,
        3 => 70_000 + i,
        _ => 300_000 + d * 7,
    };
    (0..len).map(|k| ((k * 31 + d * 7 + i) % 251) as u8).collect()
}

#[test]
fn a_cold_walk_of_a_fresh_mount_reads_the_servers_bytes_and_later_changes() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let tree = env.home().join("tree");
    for d in 0..12 {
        let dir = tree.join(format!("d{d:02}/sub{}", d % 3));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..15 {
            std::fs::write(dir.join(format!("f{i:02}")), content(d, i)).unwrap();
        }
    }
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::os::unix::fs::symlink("d00/sub0/f01", tree.join("link")).unwrap();
    let id = env.ok(&["session", "create", "--from-dir", "tree", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let want = files(&snapshot(&tree));

    let m = Mount::new(&env, &id, &env.home().join("m"));
    // Cold: every listing and every byte comes from the server, in batches.
    assert_same_tree(&want, &files(&snapshot(m.root())), "cold walk of a fresh mount");
    // Warm: the same from the caches.
    assert_same_tree(&want, &files(&snapshot(m.root())), "second walk");
    assert!(m.path("empty").is_dir());

    // Changed on the server: one file already read, one whose bytes only came with a
    // sibling's batch (f02 read first brings f03), never read through the mount.
    let f02 = m.path("d05/sub2/f02");
    std::fs::read(&f02).unwrap();
    let local = env.home().join("new.txt");
    std::fs::write(&local, b"changed elsewhere").unwrap();
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "d05/sub2/f02"]);
    env.ok(&["fs", "put", &id, local.to_str().unwrap(), "d05/sub2/f03"]);
    for path in [f02, m.path("d05/sub2/f03")] {
        assert!(
            eventually(Duration::from_secs(3), || std::fs::read(&path).unwrap()
                == b"changed elsewhere"),
            "{} still shows its old bytes; mount log:\n{}",
            path.display(),
            m.log()
        );
    }
    m.unmount();
}

/// A directory whose listing is larger than a gRPC message (55,000 entries with names of 240
/// bytes, about 18 MiB of listing against the mount's 16 MiB message limit) comes in pieces: the
/// first walk of the mount lists it whole, names and sizes right, and a write in it afterwards
/// merges into the listing.
#[test]
fn a_directory_larger_than_a_message_lists_whole_through_a_mount() {
    if !fuse_available() {
        return;
    }
    const FILES: usize = 55_000;
    let env = TestEnv::new();
    let tree = env.home().join("tree");
    let big = tree.join("big");
    std::fs::create_dir_all(&big).unwrap();
    let name = |i: usize| format!("{}-{i:07}.txt", "n".repeat(228));
    for i in 0..FILES {
        let data: &[u8] = if i % 1000 == 0 { b"every thousandth" } else { b"" };
        std::fs::write(big.join(name(i)), data).unwrap();
    }
    std::fs::write(tree.join("top.txt"), b"top").unwrap();
    let id = env.ok(&["session", "create", "--from-dir", "tree", "--json"]).json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_dir_all(&tree).unwrap();

    let m = Mount::new(&env, &id, &env.home().join("m"));
    // The root's first listing brings `big` below it in the same call.
    assert_eq!(std::fs::read(m.path("top.txt")).unwrap(), b"top");
    let mut names: Vec<String> = std::fs::read_dir(m.path("big"))
        .unwrap_or_else(|e| panic!("listing big: {e}; mount log:\n{}", m.log()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), FILES, "mount log:\n{}", m.log());
    assert!(names.iter().enumerate().all(|(i, n)| *n == name(i)), "names differ");
    for i in [0, 1, 999, 1000, 44_000, FILES - 1] {
        let want: &[u8] = if i % 1000 == 0 { b"every thousandth" } else { b"" };
        assert_eq!(
            std::fs::read(m.path(&format!("big/{}", name(i)))).unwrap(),
            want,
            "{}",
            name(i)
        );
    }
    std::fs::write(m.path("big/zz-new"), b"new").unwrap();
    assert_eq!(std::fs::read_dir(m.path("big")).unwrap().count(), FILES + 1);
    m.unmount();
    let stat = env.ok(&["fs", "stat", &id, "big/zz-new", "--json"]).json();
    assert_eq!(stat["size"], 3, "{stat}");
}
