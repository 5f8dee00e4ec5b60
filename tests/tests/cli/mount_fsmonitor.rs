//! `aether fsmonitor` as git's fsmonitor hook in a real mount, with real git: the first
//! `git status` stores the hook's token in the index, a change made over REST afterwards is
//! reported by the hook and shown by `git status`, a change the mount still holds is too, and
//! a token the server cannot answer from means a full scan. `GIT_TRACE_FSMONITOR` proves the
//! hook ran and what it said.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::TestEnv;
use crate::mount_harness::{Mount, Rest, eventually, fuse_available, ok, output, timed};

const LIMIT: Duration = Duration::from_secs(120);

struct Repo<'a> {
    env: &'a TestEnv,
    dir: PathBuf,
    trace: PathBuf,
}

impl Repo<'_> {
    fn git(&self, args: &[&str]) -> std::process::Command {
        let mut c = timed(LIMIT, "git");
        c.args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.env.home())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Ada")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .env("GIT_TRACE_FSMONITOR", &self.trace)
            // The hook finds the server as any `aether` command does.
            .env("AETHER_URL", &self.env.url)
            .env("AETHER_TOKEN", &self.env.admin);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let trace = self.trace.clone();
        ok(&mut self.git(args), || {
            format!("trace:\n{}", std::fs::read_to_string(&trace).unwrap_or_default())
        })
    }

    /// `git status --porcelain`, and what the fsmonitor trace says about it.
    fn status(&self) -> (String, String) {
        let _ = std::fs::remove_file(&self.trace);
        let s = self.ok(&["status", "--porcelain"]);
        (s, std::fs::read_to_string(&self.trace).unwrap_or_default())
    }

    /// The token the index holds (its fsmonitor extension), if one of aether's.
    fn token(&self, session: &str) -> Option<String> {
        let index = std::fs::read(self.dir.join(".git/index")).unwrap();
        let needle = format!("aether:{session}:");
        let at = index.windows(needle.len()).position(|w| w == needle.as_bytes())?;
        let end = index[at..].iter().position(|b| *b == 0)? + at;
        Some(String::from_utf8_lossy(&index[at..end]).into_owned())
    }
}

/// `aether fsmonitor 2 TOKEN` run directly in `dir`: exit code, stdout, stderr.
fn hook(env: &TestEnv, dir: &Path, token: &str) -> (i32, Vec<u8>, String) {
    let mut cmd = env.cmd(&["fsmonitor", "2", token]);
    cmd.current_dir(dir);
    let out = output(&mut cmd);
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn git_status_asks_the_server_what_changed_through_aether_fsmonitor() {
    if !fuse_available() {
        return;
    }
    let env = TestEnv::new();
    let (id, m) = Mount::of_new_session(&env);
    let rest = Rest::new(&env);
    let repo = Repo {
        env: &env,
        dir: m.path("work/repo"),
        trace: env.home().join("fsmonitor.trace"),
    };
    std::fs::create_dir_all(repo.dir.join("src")).unwrap();
    repo.ok(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.dir.join("a.txt"), "a\n").unwrap();
    std::fs::write(repo.dir.join("src/b.txt"), "b\n").unwrap();
    repo.ok(&["add", "."]);
    repo.ok(&["commit", "-q", "-m", "first"]);
    let exe = env!("CARGO_BIN_EXE_aether-under-test");
    repo.ok(&["config", "core.fsmonitor", &format!("'{exe}' fsmonitor")]);

    let (code, out, err) = hook(&env, &repo.dir, "1");
    assert_eq!(code, 0, "the hook answers in the repository: {err} {out:?}");

    // First use: git passes a token of its own (a time); the hook says "everything" and gives
    // its own token, which the index keeps.
    let (s, trace) = repo.status();
    assert_eq!(s, "", "clean after the commit; trace:\n{trace}");
    assert!(trace.contains("fsmonitor"), "the hook was asked; trace:\n{trace}");
    let first = repo
        .token(&id)
        .unwrap_or_else(|| panic!("the index keeps aether's token; trace:\n{trace}"));

    // A change over REST: the hook names it, git shows it.
    rest.put(&id, "work/repo/a.txt", b"changed over REST\n");
    let mut last = String::new();
    let shown = eventually(Duration::from_secs(10), || {
        let (s, trace) = repo.status();
        last = format!("{s}\ntrace:\n{trace}");
        s == " M a.txt\n"
    });
    assert!(shown, "git status shows the REST change; last:\n{last}");
    assert!(
        last.contains(&format!("aether:{id}:")),
        "git asked with aether's token:\n{last}"
    );
    assert!(last.contains("a.txt"), "the hook named a.txt:\n{last}");
    let (code, out, err) = hook(&env, &repo.dir, &first);
    assert_eq!(code, 0, "{err}");
    let answer: Vec<&[u8]> = out.split(|b| *b == 0).collect();
    assert!(answer[0].starts_with(format!("aether:{id}:").as_bytes()), "{out:?}");
    assert!(
        answer.contains(&&b"a.txt"[..]),
        "the hook names a.txt since the first token: {out:?}"
    );
    assert!(!answer.contains(&&b"/"[..]), "an exact answer: {out:?}");
    assert!(
        !answer.iter().any(|p| p.starts_with(b"src")),
        "nothing else changed: {out:?}"
    );

    // A change the mount may still hold when git asks: the hook's query recalls it first.
    std::fs::write(repo.dir.join("src/b.txt"), "changed in the mount, longer\n").unwrap();
    let (s, trace) = repo.status();
    assert_eq!(s, " M a.txt\n M src/b.txt\n", "trace:\n{trace}");
    assert!(trace.contains(&format!("aether:{id}:")), "trace:\n{trace}");

    // Tokens the server cannot answer from: "everything", with a fresh token.
    let other = env.new_session();
    for bad in [
        "1712345678901234567",
        "aether:nonsense",
        &format!("aether:{other}:5"),
        &format!("aether:{id}:999999999"),
    ] {
        let (code, out, err) = hook(&env, &repo.dir, bad);
        assert_eq!(code, 0, "{bad}: {err}");
        let answer: Vec<&[u8]> = out.split(|b| *b == 0).collect();
        assert!(
            answer[0].starts_with(format!("aether:{id}:").as_bytes()),
            "{bad}: {out:?}"
        );
        assert_eq!(answer[1], b"/", "{bad}: everything changed: {out:?}");
    }
    // git with an unknown token scans in full, and is still right.
    repo.ok(&["update-index", "--no-fsmonitor"]);
    rest.put(&id, "work/repo/src/c.txt", b"new\n");
    assert!(eventually(Duration::from_secs(10), || m
        .path("work/repo/src/c.txt")
        .exists()));
    repo.ok(&["update-index", "--fsmonitor"]);
    let (s, trace) = repo.status();
    assert_eq!(s, " M a.txt\n M src/b.txt\n?? src/c.txt\n", "trace:\n{trace}");

    // Outside a mount the hook fails (git then scans) and says why.
    let (code, _, err) = hook(&env, env.home(), "x");
    assert_ne!(code, 0);
    assert!(err.contains("not inside an aether mount"), "{err}");
}
