//! POSIX edge cases run on a real mount of a session (real aetherd, real `aether mount`, kernel
//! FUSE) and on a plain temporary directory, compared result by result and errno by errno.
//! Afterwards the server's copy (REST, after unmount) must hold what the local directory holds.

use std::fs;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Node, Rest, assert_same_tree, fuse_available, snapshot};

use aether_mount::posix_scenario::scenario;

#[test]
fn posix_edge_cases_on_a_real_mount_match_a_local_directory() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let id = env.new_session();
    let local = tempfile::tempdir().unwrap();
    let expected = scenario(local.path());
    let dir = env.home().join("m");
    let m = Mount::new(&env, &id, &dir);
    // Root's mount leaves permission checks to the mount (the kernel's would cost a GETATTR
    // after every change to a directory); anyone else's keeps the kernel's. The scenario's
    // access(2) and exec of a file without execute bits must match either way.
    let options = mount_options(&dir);
    let root = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0;
    assert_eq!(
        options.split(',').any(|o| o == "default_permissions"),
        !root,
        "mount options {options}"
    );
    let got = scenario(m.root());
    assert_eq!(expected.len(), got.len());
    let differences: Vec<String> = expected
        .iter()
        .zip(&got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| format!("local  {e}\nmount  {g}"))
        .collect();
    assert!(
        differences.is_empty(),
        "\n{}\nmount log:\n{}",
        differences.join("\n"),
        m.log()
    );
    let through_mount = snapshot(m.root());
    m.unmount();

    // What the server holds equals the local directory: special files and both names of a
    // hard link included.
    let local_snap = snapshot(local.path());
    assert_same_tree(&local_snap, &through_mount, "the mount before unmount");
    let from_api = Rest::new(&env).snapshot(&id);
    assert_same_tree(&local_snap, &from_api, "the server after unmount");
    assert!(matches!(from_api.get("sparse"), Some(Node::File { size, .. }) if *size == 10 << 20));
}

/// The options /proc/mounts lists for the mount at `dir`.
fn mount_options(dir: &std::path::Path) -> String {
    let mounts = fs::read_to_string("/proc/mounts").unwrap();
    let dir = dir.to_str().unwrap();
    mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[1] == dir)
        .map(|f| f[3].to_owned())
        .unwrap_or_else(|| panic!("{dir} is not in /proc/mounts:\n{mounts}"))
}
