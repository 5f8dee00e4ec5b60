//! The corpus generator and the suite's own instruments: the corpus is deterministic and holds
//! every adversarial case it promises; the raw tar reader agrees with GNU tar; the projections
//! for git are right; the version encoding detects torn reads. A suite whose instruments are
//! wrong proves nothing, so they are tested first.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use aether_tests::corpus::{Corpus, EDGE_SIZES, git_projection, names, tree_spelling};
use aether_tests::report::Differences;
use aether_tests::snapshot::{Kind, Snapshot};
use aether_tests::versions::{self, Ledger, Version};
use aether_tests::{git, prereq, process, tar_raw};

use crate::scratch;

const MIB: u64 = 1 << 20;

#[test]
fn corpus_is_deterministic_and_holds_every_case() {
    if !prereq::git("corpus_is_deterministic_and_holds_every_case") {
        return;
    }
    let c = crate::corpus();
    let s = &c.snapshot;
    let get = |p: &str| s.get(p.as_bytes()).unwrap_or_else(|| panic!("the corpus has no {p}"));

    // Same seed, same corpus (git's own index holds stat data, so .git is compared by fsck).
    let again_dir = tempfile::tempdir_in(scratch()).unwrap();
    let again = Corpus::generate(&again_dir.path().join("c"), c.seed);
    let outside_git =
        |snap: &Snapshot| snap.map(|p, e| (!p.starts_with(b"repo/.git")).then(|| (p.to_vec(), e.clone())));
    let diffs = Differences::new();
    outside_git(s).compare(&outside_git(&again.snapshot), "second generation", &diffs);
    diffs.assert_none("the corpus is not deterministic");
    // Another seed, other bytes.
    let other_dir = tempfile::tempdir_in(scratch()).unwrap();
    let other = Corpus::generate(&other_dir.path().join("c"), c.seed + 1);
    assert_ne!(
        other.snapshot.get(names::RANDOM_BIG.as_bytes()).unwrap().digest,
        get(names::RANDOM_BIG).digest
    );

    // Sizes.
    for n in EDGE_SIZES {
        assert_eq!(get(&format!("sizes/{n}.bin")).size, n as u64);
    }
    assert!(
        (15 * MIB..=30 * MIB).contains(&s.file_bytes()),
        "corpus size {}",
        s.summary()
    );
    assert_eq!(get("big/repeated-2MiB-block-x3.bin").size, 6 * MIB);
    // Sparse: holes on disk.
    let sparse = std::fs::metadata(c.root.join(names::SPARSE)).unwrap();
    assert_eq!(sparse.len(), 3 * MIB);
    assert!(
        sparse.blocks() * 512 < sparse.len() / 2,
        "{} has no holes",
        names::SPARSE
    );
    // Modes.
    assert_eq!(get("modes/private").mode, 0o600);
    assert_eq!(get("modes/read-only").mode, 0o444);
    assert_eq!(get("modes/exec.sh").mode, 0o755);
    assert_eq!(get("modes/private-dir").mode, 0o700);
    assert_eq!(get("modes/private-empty-dir").kind, Kind::Dir);
    // Symlink targets, verbatim.
    for (link, target) in [
        ("links/dotdot-dot-x", "../.././x"),
        ("links/abs-double-slash", "//abs//path"),
        ("links/mid-double-slash", "sub//inside.txt"),
        ("links/mid-dot", "sub/./inside.txt"),
        ("links/trailing-slash", "sub/"),
        ("links/dir-dot", "sub/."),
        ("links/dangling", "no/such/file"),
    ] {
        assert_eq!(get(link).target.as_deref(), Some(target.as_bytes()), "{link}");
    }
    // Names: NFC and NFD are two entries; 255-byte names; git's reserved names plus `~`.
    assert_ne!(names::NFC.as_bytes(), names::NFD.as_bytes());
    assert_ne!(get(names::NFC).digest, get(names::NFD).digest);
    let longest = s
        .entries
        .keys()
        .map(|p| p.rsplit(|b| *b == b'/').next().unwrap().len())
        .max()
        .unwrap();
    assert_eq!(longest, 255);
    assert_eq!(get(names::DOT_GIT_TILDE).kind, Kind::File);
    assert_eq!(get(names::GIT_1_TILDE).kind, Kind::File);
    // Depth, empty directories.
    let depth = s
        .entries
        .keys()
        .map(|p| p.iter().filter(|b| **b == b'/').count())
        .max()
        .unwrap();
    assert!(depth >= 40, "deepest entry has {depth} slashes");
    for d in ["empty", "empty-nest/a/b/c", "modes/private-empty-dir"] {
        assert!(
            !s.entries.keys().any(|p| p.starts_with(format!("{d}/").as_bytes())),
            "{d} is not empty"
        );
    }
    // A real, packed repository.
    assert!(
        s.entries
            .keys()
            .any(|p| p.starts_with(b"repo/.git/objects/pack/pack-") && p.ends_with(b".pack")),
        "repo/.git has no pack"
    );
    let repo = c.root.join(names::REPO);
    process::ok(git::git(&repo, Duration::from_secs(60)).args(["fsck", "--full", "--no-progress"]));
    assert_eq!(git::ok_in(&repo, &["rev-list", "--count", "HEAD"]).trim(), "2");
    assert_eq!(git::ok_in(&repo, &["status", "--porcelain"]), "");
}

#[test]
fn projections_for_git_follow_what_git_holds() {
    if !prereq::git("projections_for_git_follow_what_git_holds") {
        return;
    }
    let c = crate::corpus();
    let p = git_projection(&c.snapshot);
    assert!(p.entries.keys().all(|k| !k.split(|b| *b == b'/').any(|c| c == b".git")));
    assert!(p.get(b"repo/README.md").is_some());
    assert!(p.get(names::DOT_GIT_TILDE.as_bytes()).is_some());
    assert!(p.get(b"empty").is_none() && p.get(b"empty-nest").is_none());
    assert_eq!(p.get(b"modes/read-only").unwrap().mode, 0o644);
    assert_eq!(p.get(b"modes/owner-only-exec").unwrap().mode, 0o755);
    assert_eq!(p.get(b"modes/private-dir").unwrap().mode, 0o755);
    let t = tree_spelling(&c.snapshot);
    assert!(t.get(b"repo/.git~/HEAD").is_some());
    assert!(t.get(b"names/.git~~").is_some());
    assert!(t.get(b"names/GIT~1~~").is_some());
    assert!(t.get(b"names/UPPER.TXT").is_some());

    // The projection is what a real repository made from the corpus holds.
    let dir = tempfile::tempdir_in(scratch()).unwrap();
    let repo = dir.path().join("r");
    std::fs::create_dir(&repo).unwrap();
    c.git_repository(&repo);
    let clone = dir.path().join("clone");
    process::ok(
        git::git(dir.path(), Duration::from_secs(120))
            .args(["clone", "-q", "--no-local"])
            .arg(&repo)
            .arg(&clone),
    );
    let diffs = Differences::new();
    let mut got = Snapshot::from_dir(&clone, &diffs, "clone").unwrap();
    got.entries.retain(|k, _| !k.starts_with(b".git/") && k != b".git");
    let got = normalise_checkout(&got);
    normalise_checkout(&p).compare(&got, "clone of a repository made from the corpus", &diffs);
    diffs.assert_none("git_projection differs from what git holds");
}

/// A checkout's modes as git decides them (directories and the umask are the checkout's).
pub fn normalise_checkout(s: &Snapshot) -> Snapshot {
    s.map(|p, e| {
        let mut e = e.clone();
        e.mode = match e.kind {
            Kind::Dir => 0o755,
            Kind::File if e.mode & 0o100 != 0 => 0o755,
            Kind::File => 0o644,
            Kind::Symlink => 0,
        };
        Some((p.to_vec(), e))
    })
}

#[test]
fn raw_tar_reader_agrees_with_gnu_tar() {
    if !prereq::git("raw_tar_reader_agrees_with_gnu_tar") || !prereq::gnu_tar("raw_tar_reader_agrees_with_gnu_tar") {
        return;
    }
    let c = crate::corpus();
    // (ustar cannot hold the 255-byte names or the long link target.)
    for format in ["gnu", "pax"] {
        let out = std::process::Command::new("tar")
            .args(["--format", format, "-C"])
            .arg(&c.root)
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let diffs = Differences::new();
        let entries = tar_raw::parse(&out.stdout).unwrap_or_else(|e| panic!("{format}: {e}"));
        let snap = tar_raw::snapshot(&entries, &diffs, format);
        c.snapshot.compare(&snap, format, &diffs);
        diffs.assert_none(&format!("the raw tar reader on GNU tar --format={format}"));
    }
}

#[test]
fn versions_name_themselves_and_torn_reads_are_caught() {
    let a = Version {
        file: 7,
        writer: 2,
        seq: 123,
        len: 200_000,
    };
    let b = Version { seq: 124, ..a };
    let short = Version { len: 4096, ..b };
    let bytes_a = versions::bytes(&a);
    assert_eq!(bytes_a.len(), 200_000);
    assert_eq!(versions::check(7, &bytes_a, 0, true), Ok(a));
    assert_eq!(versions::check(7, &bytes_a[1000..5000], 1000, false), Ok(a));
    assert!(versions::check(8, &bytes_a, 0, true).is_err(), "another file's bytes");
    // Mixed versions, cut versions, zero-filled tails, short reads of a whole file.
    let mut mixed = bytes_a.clone();
    mixed[100_000..].copy_from_slice(&versions::bytes(&b)[100_000..]);
    assert!(versions::check(7, &mixed, 0, true).is_err());
    assert!(versions::check(7, &bytes_a[..4096], 0, true).is_err());
    let mut zero_tail = versions::bytes(&short);
    zero_tail.resize(200_000, 0);
    assert!(versions::check(7, &zero_tail, 0, true).is_err());
    let mut newer_cut = versions::bytes(&b);
    newer_cut.truncate(4096);
    assert!(versions::check(7, &newer_cut, 0, true).is_err(), "b cut to 4096 bytes");
    assert!(versions::check(7, &[0; 100], 0, true).is_err());
    // The smallest version still names itself.
    let tiny = Version {
        len: versions::SMALLEST,
        ..a
    };
    assert_eq!(versions::check(7, &versions::bytes(&tiny), 0, true), Ok(tiny));

    // The ledger: the last acknowledged write wins; an earlier one is missing-by-supersession.
    let ledger = Ledger::default();
    ledger.start(a);
    let during = ledger.tick();
    assert!(ledger.in_flight_after(&a, during), "a is being written");
    ledger.finish(a, true);
    let after = ledger.tick();
    assert!(ledger.in_flight_after(&a, during), "a was acknowledged after `during`");
    assert!(
        !ledger.in_flight_after(&a, after),
        "a read starting after a's acknowledgement must see it whole"
    );
    ledger.start(b);
    ledger.finish(b, true);
    assert!(ledger.judge_final(7, Some(b)).is_ok());
    assert!(
        ledger.judge_final(7, Some(a)).is_err(),
        "b started after a was acknowledged"
    );
    assert!(ledger.judge_final(7, None).is_err(), "nothing emptied the file");
    // Overlapping writes: either may win.
    let c = Version { seq: 125, ..a };
    let d = Version { seq: 126, ..a };
    ledger.start(c);
    ledger.start(d);
    ledger.finish(c, true);
    ledger.finish(d, true);
    assert!(ledger.judge_final(7, Some(c)).is_ok() && ledger.judge_final(7, Some(d)).is_ok());
    // A truncation explains an empty file until an acknowledged write follows it.
    ledger.truncation(7, 3);
    assert!(ledger.judge_final(7, None).is_ok());
    let e = Version { seq: 127, ..a };
    ledger.start(e);
    ledger.finish(e, true);
    assert!(ledger.judge_final(7, None).is_err());
}
