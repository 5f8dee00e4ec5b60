//! Reads at a revision through the CLI show what the revision recorded that git cannot hold. A
//! mount at a checkpoint or at a commit on the session's branch (`aether mount --at`) has the
//! empty `.git/refs/heads` of a repository whose refs git packed (without it git says "not a git
//! repository") and modes such as 600 and 700: `git log` and `git status` work in it, and it is
//! read-only. `aether export --at` archives the same empty directories and modes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, fuse_available, ok};

/// `git ARGS` in `repo`, isolated from the machine's configuration, with a pinned identity.
fn git(repo: &Path, args: &[&str], context: &dyn Fn() -> String) -> String {
    ok(&mut crate::mount_harness::git(repo, args), context)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn git_log_and_status_work_in_a_mount_at_a_checkpoint_or_a_commit() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    let repo = m.path("repo");
    std::fs::create_dir(&repo).unwrap();
    let g = |args: &[&str]| git(&repo, args, &|| m.log());
    g(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    std::fs::write(repo.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(repo.join("run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
    g(&["add", "."]);
    g(&["commit", "-q", "-m", "first"]);
    // Packs the refs: `.git/refs/heads` is left empty.
    g(&["gc", "-q"]);
    assert_eq!(std::fs::read_dir(repo.join(".git/refs/heads")).unwrap().count(), 0);
    std::fs::write(m.path("secret"), "s").unwrap();
    std::fs::set_permissions(m.path("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    m.unmount();

    env.ok(&["checkpoint", "create", &id]);
    env.ok(&["commit", &id, "-m", "the repository"]);
    // The live session drops what the revisions must still show.
    env.ok(&["fs", "rm", &id, "repo/.git/refs", "--recursive"]);

    for (n, rev) in ["checkpoints/1", "main"].into_iter().enumerate() {
        let at = Mount::with_args(&env, &id, &env.home().join(format!("at{n}")), &["--at", rev]);
        let repo = at.path("repo");
        let g = |args: &[&str]| git(&repo, args, &|| format!("mount at {rev}\n{}", at.log()));
        assert!(
            repo.join(".git/refs/heads").is_dir(),
            "the empty .git/refs/heads at {rev}"
        );
        assert_eq!(g(&["log", "--format=%s"]), "first\n", "git log at {rev}");
        assert_eq!(g(&["status", "--porcelain"]), "", "git status at {rev}");
        assert_eq!(mode(&at.path("secret")), 0o600, "mode of secret at {rev}");
        assert_eq!(mode(&repo.join("run.sh")), 0o700, "mode of run.sh at {rev}");
        assert!(
            std::fs::write(at.path("new"), "x").is_err(),
            "a mount at a revision is read-only"
        );
        at.unmount();
    }
}

#[test]
fn export_at_a_checkpoint_or_a_commit_keeps_empty_directories_and_modes() {
    let env = TestEnv::new();
    let id = env.new_session();
    let local = env.home().join("bytes");
    std::fs::write(&local, "x").unwrap();
    let local = local.to_str().unwrap();
    env.ok(&["fs", "mkdir", &id, "empty/deep", "--parents"]);
    env.ok(&["fs", "put", &id, local, "secret", "--mode", "600"]);
    env.ok(&["fs", "put", &id, local, "ro", "--mode", "444"]);
    env.ok(&["fs", "mkdir", &id, "private"]);
    env.ok(&["fs", "chmod", &id, "700", "private"]);
    env.ok(&["checkpoint", "create", &id]);
    env.ok(&["commit", &id, "-m", "posix"]);
    env.ok(&["fs", "rm", &id, "empty", "--recursive"]);
    env.ok(&["fs", "chmod", &id, "644", "secret"]);
    env.ok(&["fs", "chmod", &id, "755", "private"]);

    let expected: BTreeMap<String, (tar::EntryType, u32)> = [
        ("empty", tar::EntryType::Directory, 0o755),
        ("empty/deep", tar::EntryType::Directory, 0o755),
        ("private", tar::EntryType::Directory, 0o700),
        ("ro", tar::EntryType::Regular, 0o444),
        ("secret", tar::EntryType::Regular, 0o600),
    ]
    .into_iter()
    .map(|(p, k, m)| (p.to_owned(), (k, m)))
    .collect();
    for rev in ["checkpoints/1", "main"] {
        let out = env.home().join("at.tar");
        env.ok(&["export", &id, "-o", out.to_str().unwrap(), "--at", rev]);
        let bytes = std::fs::read(&out).unwrap();
        let got: BTreeMap<String, (tar::EntryType, u32)> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().to_str().unwrap().trim_end_matches('/').to_owned();
                (path, (e.header().entry_type(), e.header().mode().unwrap() & 0o7777))
            })
            .collect();
        assert_eq!(got, expected, "export --at {rev}");
    }
}
