//! The disk cache proves itself end to end (issue 32): block files flipped, truncated and
//! swapped between two mounts of a real aetherd never reach a reader of either session holding
//! the bytes, nor the server through a write; `aether cache stats` counts what was dropped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Node, Rest, assert_same_tree, fuse_available, snapshot};

/// `len` pseudo-random bytes (incompressible, no repeated chunks).
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Files only, by path (the import does not keep directory modes exactly).
fn files(tree: &BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    tree.iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// Every block file of the cache directory `cache`.
fn block_files(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(cache.join("blocks")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            for f in std::fs::read_dir(&shard).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

fn flip_last_byte(path: &Path) {
    let mut raw = std::fs::read(path).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x20;
    std::fs::write(path, raw).unwrap();
}

fn cache_stats(env: &TestEnv) -> serde_json::Value {
    env.ok(&["cache", "stats", "--json"]).json()
}

#[test]
fn damaged_cache_blocks_never_reach_a_reader_nor_the_server() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let tree = env.home().join("tree");
    std::fs::create_dir_all(tree.join("small")).unwrap();
    // Chunked (several MiB), one block (kept whole, over the size whose bytes come with a
    // listing) and small files.
    std::fs::write(tree.join("big-a.bin"), random((3 << 20) + 123, 1)).unwrap();
    std::fs::write(tree.join("big-b.bin"), random((6 << 20) + 7, 2)).unwrap();
    std::fs::write(tree.join("one-block.bin"), random(700_000, 3)).unwrap();
    for (i, len) in [1usize, 4000, 100_000].into_iter().enumerate() {
        std::fs::write(tree.join(format!("small/f{i}")), random(len, 10 + i as u64)).unwrap();
    }
    let create = || {
        env.ok(&["session", "create", "--from-dir", "tree", "--json"]).json()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Two sessions holding the same bytes (the same content ids): they share cache blocks.
    let (first, second) = (create(), create());
    let want = files(&snapshot(&tree));
    let cache = PathBuf::from(cache_stats(&env)["dir"].as_str().unwrap());

    let m = Mount::new(&env, &first, &env.home().join("m1"));
    assert_same_tree(&want, &files(&snapshot(m.root())), "first mount, cold");
    m.unmount();
    let blocks = block_files(&cache);
    assert!(blocks.len() >= 8, "the first mount cached {} blocks", blocks.len());
    assert_eq!(cache_stats(&env)["corrupt_blocks_dropped"], 0);

    // Flipped bytes, a block cut to 5,000 bytes, two blocks swapped.
    flip_last_byte(&blocks[0]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blocks[1])
        .unwrap()
        .set_len(5000)
        .unwrap();
    let swap = blocks[2].with_extension("swap");
    std::fs::rename(&blocks[2], &swap).unwrap();
    std::fs::rename(&blocks[3], &blocks[2]).unwrap();
    std::fs::rename(&swap, &blocks[3]).unwrap();
    let m = Mount::new(&env, &first, &env.home().join("m2"));
    assert_same_tree(&want, &files(&snapshot(m.root())), "second mount over a damaged cache");
    m.unmount();
    assert_eq!(cache_stats(&env)["corrupt_blocks_dropped"], 4, "{}", cache_stats(&env));

    // Every block damaged; the other session reads them.
    let blocks = block_files(&cache);
    for b in &blocks {
        flip_last_byte(b);
    }
    let m = Mount::new(&env, &second, &env.home().join("m3"));
    assert_same_tree(&want, &files(&snapshot(m.root())), "the other session's mount");
    m.unmount();
    assert_eq!(
        cache_stats(&env)["corrupt_blocks_dropped"],
        4 + blocks.len() as u64,
        "every damaged block is dropped once"
    );

    // A write copies the file from the cache first: damage it again, then append one byte.
    for b in block_files(&cache) {
        flip_last_byte(&b);
    }
    let m = Mount::new(&env, &second, &env.home().join("m4"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.path("big-b.bin"))
        .unwrap();
    f.write_all(b"!").unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut expected = std::fs::read(tree.join("big-b.bin")).unwrap();
    expected.push(b'!');
    let got = Rest::new(&env).read_files(&second, &["big-b.bin".to_owned()]);
    assert!(
        got["big-b.bin"] == expected,
        "the server holds other bytes after the append"
    );
    m.unmount();
    assert_eq!(cache_stats(&env)["verification_failures"], 0);
}
