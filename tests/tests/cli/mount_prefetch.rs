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
