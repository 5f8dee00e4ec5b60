//! A git workflow inside a real mount (init, add, commit, branch, checkout, status, log, merge,
//! gc, fsck), run the same way in a plain temporary directory: with pinned identities and dates
//! every output, commit ids included, must be identical. The repository then survives an
//! unmount and a fresh mount, and the server holds its `.git`.

use std::path::Path;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Rest, fuse_available, ok, output};

/// `git ARGS` in `repo`, isolated from the machine's configuration, with pinned identity and dates.
fn git(repo: &Path, args: &[&str]) -> std::process::Command {
    let mut c = crate::mount_harness::git(repo, args);
    c.env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000");
    c
}

/// The workflow in `root`; returns every step's output, to compare with another directory's.
fn workflow(root: &Path, context: &dyn Fn() -> String) -> Vec<String> {
    let repo = root.join("repo");
    let mut out = Vec::new();
    let mut g = |args: &[&str]| {
        let o = ok(&mut git(&repo, args), context);
        out.push(format!("$ git {}\n{o}", args.join(" ")));
        o
    };
    std::fs::create_dir(&repo).unwrap();
    g(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/lib.rs"), "pub fn one() -> u32 {\n    1\n}\n").unwrap();
    std::fs::write(repo.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(repo.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    g(&["status", "--porcelain"]);
    g(&["add", "."]);
    g(&["commit", "-q", "-m", "first"]);
    assert_eq!(g(&["status", "--porcelain"]), "", "clean after the first commit");

    g(&["checkout", "-q", "-b", "feature"]);
    std::fs::write(
        repo.join("src/lib.rs"),
        "pub fn one() -> u32 {\n    1\n}\n\npub fn two() -> u32 {\n    2\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("docs")).unwrap();
    std::fs::write(repo.join("docs/notes.md"), "notes\n").unwrap();
    g(&["rm", "-q", "README.md"]);
    g(&["mv", "run.sh", "docs/run.sh"]);
    g(&["status", "--porcelain"]);
    g(&["add", "-A"]);
    g(&["commit", "-q", "-m", "feature work"]);
    g(&["log", "--stat", "--format=%H %s"]);

    g(&["checkout", "-q", "main"]);
    assert!(
        repo.join("README.md").exists() && !repo.join("docs").exists(),
        "checkout main"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("src/lib.rs")).unwrap(),
        "pub fn one() -> u32 {\n    1\n}\n"
    );
    std::fs::write(repo.join("src/lib.rs"), "pub fn one() -> u32 {\n    100\n}\n").unwrap();
    std::fs::write(repo.join("untracked.txt"), "u\n").unwrap();
    g(&["status", "--porcelain"]);
    g(&["diff"]);
    g(&["checkout", "--", "src/lib.rs"]);
    std::fs::remove_file(repo.join("untracked.txt")).unwrap();
    g(&["merge", "-q", "--ff-only", "feature"]);
    g(&["branch", "--list", "-v"]);
    g(&["log", "--oneline", "--graph", "--all"]);
    g(&["gc", "-q"]);
    g(&["fsck", "--strict", "--no-progress"]);
    g(&["status", "--porcelain"]);
    g(&["rev-parse", "HEAD", "HEAD^{tree}"]);
    out
}

#[test]
fn git_workflow_inside_the_mount_matches_a_local_directory() {
    if !fuse_available() {
        return;
    }
    let local = tempfile::tempdir().unwrap();
    let expected = workflow(local.path(), &String::new);

    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    let got = workflow(m.root(), &|| m.log());
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e, g, "the mount's git output differs from a local directory's");
    }
    assert_eq!(expected.len(), got.len());
    let head = expected.last().unwrap().clone();
    m.unmount();

    // The repository is in the session: a fresh mount sees it clean, with the same history.
    let head_file = Rest::new(&env).read_files(&id, &["repo/.git/HEAD".to_owned()]);
    assert_eq!(head_file["repo/.git/HEAD"], b"ref: refs/heads/main\n");
    let m = Mount::new(&env, &id, &env.home().join("m"));
    let repo = m.path("repo");
    let again = format!(
        "$ git rev-parse HEAD HEAD^{{tree}}\n{}",
        ok(&mut git(&repo, &["rev-parse", "HEAD", "HEAD^{tree}"]), || m.log())
    );
    assert_eq!(again, head);
    assert_eq!(ok(&mut git(&repo, &["status", "--porcelain"]), || m.log()), "");
    let fsck = output(&mut git(&repo, &["fsck", "--strict", "--no-progress"]));
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
    m.unmount();
}
