//! Inode numbers through a real kernel mount: every mount of a session shows the same `st_ino`
//! for the same entry however its directories are walked, a file made through one mount shows
//! the same number in the next, and numbers that collide still name one file each.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, RemoteOp};
use super::ino::{FIRST, Identity, Numbering};
use super::memory_backend::MemoryBackend;
use super::tests::{mount, mount_numbered};

/// `st_ino` of every entry below `root` by path, the root excluded.
type Inos = BTreeMap<String, u64>;

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().to_string_lossy().into_owned()
}

/// Depth first, each directory's entries in name order (`reverse`: the other way round, so the
/// directories are first listed in another order).
fn walk(root: &Path, reverse: bool) -> Inos {
    fn visit(root: &Path, dir: &Path, reverse: bool, out: &mut Inos) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        if reverse {
            entries.reverse();
        }
        for p in entries {
            let md = fs::symlink_metadata(&p).unwrap();
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

/// Several threads taking directories from one queue (as git's threaded preload and `find`
/// in parallel do): the order directories are first listed in is the scheduler's.
fn walk_parallel(root: &Path, threads: usize) -> Inos {
    use std::sync::Mutex;
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
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let mut entries: Vec<PathBuf> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
                    // Each thread stats its directory from another end.
                    if t % 2 == 1 {
                        entries.reverse();
                    }
                    let mut found = Vec::new();
                    for p in entries {
                        let md = fs::symlink_metadata(&p).unwrap();
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

/// Where two walks differ: the first few paths, and how many.
fn differences(a: &Inos, b: &Inos) -> (usize, Vec<String>) {
    assert_eq!(a.len(), b.len(), "both walks see the same entries");
    let differ: Vec<String> = a
        .iter()
        .filter(|(p, ino)| b.get(*p) != Some(*ino))
        .map(|(p, ino)| format!("{p}: {ino} vs {:?}", b.get(p)))
        .collect();
    (differ.len(), differ.into_iter().take(5).collect())
}

/// A session shaped like a checkout: one directory of more than 8,192 entries (a listing the
/// server splits, and more than a first listing brings with it), nested directories listed on
/// demand (more than a first listing brings, too), symlinks and a hard link.
fn checkout_like() -> Arc<MemoryBackend> {
    let backend = Arc::new(MemoryBackend::new());
    let mkdir = |p: &str| backend.apply(&RemoteOp::Mkdir { path: p.into() }).unwrap();
    mkdir("big");
    for i in 0..8_300 {
        backend.write_external(&format!("big/f{i:05}"), format!("{i}").as_bytes());
    }
    mkdir("nest");
    for a in 0..6 {
        mkdir(&format!("nest/n{a}"));
        for b in 0..4 {
            let d = format!("nest/n{a}/m{b}");
            mkdir(&d);
            for i in 0..350 {
                backend.write_external(&format!("{d}/g{i:03}"), format!("{a}{b}{i}").as_bytes());
            }
        }
        backend
            .apply(&RemoteOp::Symlink {
                path: format!("nest/n{a}/up"),
                target: "../../big".into(),
            })
            .unwrap();
    }
    backend
        .apply(&RemoteOp::Link {
            from: "big/f00007".into(),
            to: "nest/n3/hard".into(),
        })
        .unwrap();
    backend
}

#[test]
fn every_mount_shows_the_same_inode_numbers_whatever_order_it_walks_in() {
    let backend = checkout_like();
    let a = mount(backend.clone(), Duration::from_secs(5));
    let first = walk(a.dir.path(), false);
    assert!(first.len() > 14_000, "{}", first.len());
    assert_eq!(first["big/f00007"], first["nest/n3/hard"], "hard links are one inode");
    let distinct: std::collections::HashSet<u64> = first.values().copied().collect();
    assert_eq!(distinct.len(), first.len() - 1, "one number per inode");

    // A second mount, at the same time, walked the other way round.
    let b = mount(backend.clone(), Duration::from_secs(5));
    let (n, some) = differences(&first, &walk(b.dir.path(), true));
    assert_eq!(n, 0, "a second mount walked in reverse: {some:?}");
    drop(b);

    // A remount walked by threads.
    drop(a);
    let c = mount(backend.clone(), Duration::from_secs(5));
    let (n, some) = differences(&first, &walk_parallel(c.dir.path(), 6));
    assert_eq!(n, 0, "a remount walked in parallel: {some:?}");
    // And the same mount walked again once its listings are cached.
    let (n, some) = differences(&first, &walk(c.dir.path(), true));
    assert_eq!(n, 0, "the same mount walked again: {some:?}");
}

#[test]
fn a_file_made_through_one_mount_shows_the_same_number_in_the_next() {
    let backend = Arc::new(MemoryBackend::new());
    backend.write_external("old", b"there before");
    let a = mount(backend.clone(), Duration::from_secs(5));
    let root = a.dir.path();
    fs::create_dir_all(root.join("made/sub")).unwrap();
    let mut f = fs::File::create(root.join("made/new.txt")).unwrap();
    f.write_all(b"written through mount A").unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::os::unix::fs::symlink("new.txt", root.join("made/ln")).unwrap();
    fs::write(root.join("made/sub/deep"), b"deeper").unwrap();
    fs::write(root.join("made/moved-from"), b"renamed in A").unwrap();
    let moved_ino = fs::metadata(root.join("made/moved-from")).unwrap().ino();
    fs::rename(root.join("made/moved-from"), root.join("made/moved-to")).unwrap();
    a.synced();
    let in_a = walk(root, false);
    assert_eq!(in_a["made/moved-to"], moved_ino, "a rename keeps the inode");

    let b = mount(backend.clone(), Duration::from_secs(5));
    let in_b = walk(b.dir.path(), true);
    let mut want = in_a.clone();
    // The known limit: the next mount numbers a renamed file after its new path.
    let renamed = Numbering::default().derived(Identity::Path("made/moved-to"));
    want.insert("made/moved-to".into(), renamed);
    let (n, some) = differences(&want, &in_b);
    assert_eq!(n, 0, "made through mount A, seen in mount B: {some:?}");
    assert_eq!(
        fs::read(b.dir.path().join("made/new.txt")).unwrap(),
        b"written through mount A"
    );
}

/// Every derived number is the same one (a span of 1): each entry still gets a number of its
/// own, the next free one, and the kernel serves each file's own bytes under it, through
/// removals, re-creations and a file replaced elsewhere while it is open.
#[test]
fn colliding_numbers_probe_to_free_ones_and_every_file_keeps_its_own_bytes() {
    let backend = Arc::new(MemoryBackend::new());
    backend.apply(&RemoteOp::Mkdir { path: "d".into() }).unwrap();
    let bytes = |name: &str| format!("the bytes of {name}, {} long", name.len()).into_bytes();
    for name in ["a", "b", "d/c", "d/e"] {
        backend.write_external(name, &bytes(name));
    }
    let m = mount_numbered(backend.clone(), Numbering::squeezed(1));
    let root = m.dir.path();
    let check = |names: &[&str]| -> Inos {
        let inos = walk(root, false);
        let distinct: std::collections::HashSet<u64> = inos.values().copied().collect();
        assert_eq!(distinct.len(), inos.len(), "one number each: {inos:?}");
        for name in names {
            assert_eq!(fs::read(root.join(name)).unwrap(), bytes(name), "{name}");
            assert_eq!(fs::metadata(root.join(name)).unwrap().ino(), inos[*name]);
        }
        inos
    };
    let inos = check(&["a", "b", "d/c", "d/e"]);
    // The root's listing came first, in name order: a, b, d, then d's.
    assert_eq!(inos["a"], FIRST);
    assert_eq!(inos["b"], FIRST + 1);
    assert!(inos.values().all(|&n| (FIRST..FIRST + 5).contains(&n)), "{inos:?}");

    // Made through the mount: the next free number.
    fs::write(root.join("d/new"), bytes("d/new")).unwrap();
    let inos = check(&["a", "b", "d/c", "d/e", "d/new"]);
    assert_eq!(inos["d/new"], FIRST + 5);

    // `a` removed while open: its number stays its own while the descriptor holds it.
    let mut held = fs::File::open(root.join("a")).unwrap();
    fs::remove_file(root.join("a")).unwrap();
    fs::write(root.join("a2"), bytes("a2")).unwrap();
    let inos = check(&["b", "d/c", "d/e", "d/new", "a2"]);
    assert_ne!(inos["a2"], FIRST, "the removed `a` is still open");
    let mut old = Vec::new();
    held.read_to_end(&mut old).unwrap();
    assert_eq!(old, bytes("a"), "the open descriptor reads the removed file");
    assert_eq!(held.metadata().unwrap().ino(), FIRST);
    drop(held);

    // `b` replaced elsewhere while open: the new content gets a number of its own.
    let held = fs::File::open(root.join("b")).unwrap();
    let held_ino = held.metadata().unwrap().ino();
    backend.write_external("b", b"new bytes from elsewhere");
    let start = std::time::Instant::now();
    while fs::read(root.join("b")).unwrap() != b"new bytes from elsewhere" {
        assert!(start.elapsed() < Duration::from_secs(5), "the change elsewhere shows");
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = fs::metadata(root.join("b")).unwrap().ino();
    assert_ne!(
        now, held_ino,
        "new content elsewhere gets a new inode while the old is held"
    );
    assert_eq!(held.metadata().unwrap().ino(), held_ino);
    drop(held);
    for name in ["d/c", "d/e", "d/new", "a2"] {
        assert_eq!(fs::read(root.join(name)).unwrap(), bytes(name), "{name}");
    }
}
