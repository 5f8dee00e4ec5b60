//! Command-line options, parsed by hand (a handful of flags does not need a parser crate).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::benches::Bench;
use crate::corpus::CorpusKind;
use crate::scratch_fs::ScratchFs;

#[derive(Debug, Clone)]
pub struct Options {
    /// Benchmarks to run; empty means the default set.
    pub names: Vec<String>,
    /// The tree `import`, `fork`, `checkpoint` and `parallel-forks` work on.
    pub corpus: CorpusKind,
    /// Rounds of alternating ours/reference measurements per benchmark (some benchmarks cap it).
    pub rounds: usize,
    pub json: Option<PathBuf>,
    /// Where the corpus cache and the scratch directory of a run live.
    pub work_dir: PathBuf,
    /// Size of the file `large-file` (and `ingest-parts`) writes.
    pub large_mib: u64,
    /// Seconds of load per sample of `http-small-reads`.
    pub http_secs: u64,
    /// Concurrent forks of `parallel-forks`.
    pub forks: usize,
    /// Concurrent full-checkout worktrees of the `parallel-forks` reference; default: `forks` on
    /// the small corpus, none on the full one (see that benchmark).
    pub git_forks: Option<usize>,
    /// Where the mount benchmarks put each side's files ([`ScratchFs`]).
    pub scratch_fs: ScratchFs,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            names: Vec::new(),
            corpus: CorpusKind::Linux,
            rounds: 3,
            json: None,
            work_dir: std::env::temp_dir().join("aether-bench"),
            large_mib: 1024,
            http_secs: 5,
            forks: 30,
            git_forks: None,
            scratch_fs: ScratchFs::Ext4Image,
        }
    }
}

pub enum Parsed {
    Run(Options),
    Help,
    List,
}

pub fn usage(benches: &[Box<dyn Bench>]) -> String {
    let mut s = String::from(
        "usage: aether-bench [NAMES...] [--corpus linux|small] [--rounds N] [--json FILE]\n\
         \x20                   [--work-dir DIR] [--large-mib N] [--http-secs N] [--forks N]\n\
         \x20                   [--git-forks N] [--scratch-fs ext4|dir] [--list]\n\n\
         Runs the named benchmarks (the default set when none is named), ours and the reference\n\
         alternating, and prints one table.\n\nbenchmarks (* = in the default set):\n",
    );
    for b in benches {
        let mark = if b.default_set() { '*' } else { ' ' };
        s.push_str(&format!("  {mark} {:<17} {}\n", b.name(), b.about()));
    }
    let d = Options::default();
    s.push_str(&format!(
        "\noptions:\n  \
         --corpus C      linux (default): /usr/src/linux-source-6.1.tar.xz when installed\n                  \
         (apt-get install linux-source-6.1), else a synthetic tree of the same shape\n                  \
         from fixtures/make_linux_like_tree.py; small: 400 files of that shape\n  \
         --rounds N      rounds per benchmark (default {}; heavy references take fewer)\n  \
         --json FILE     also write every sample as JSON\n  \
         --work-dir DIR  corpus cache and scratch space (default {})\n  \
         --large-mib N   size of the large-file file (default {})\n  \
         --http-secs N   seconds of load per http-small-reads sample (default {})\n  \
         --forks N       concurrent forks in parallel-forks (default {})\n  \
         --git-forks N   concurrent full-checkout git worktrees in its reference, besides the\n                  \
         sparse ones it always runs (default: --forks on the small corpus, none on\n                  \
         linux, where each is a 1.3 GB checkout: --git-forks 30 needs ~40 GB)\n  \
         --scratch-fs F  where the mount benchmarks work: ext4 (default), a fresh loop-mounted\n                  \
         ext4 per side and round (needs root); dir, a directory in --work-dir\n",
        d.rounds,
        d.work_dir.display(),
        d.large_mib,
        d.http_secs,
        d.forks
    ));
    s
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let v = v.with_context(|| format!("{flag} needs a value"))?;
    v.parse().with_context(|| format!("bad value '{v}' for {flag}"))
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed> {
        let mut o = Options::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            match a.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--list" => return Ok(Parsed::List),
                "--corpus" => o.corpus = args.next().context("--corpus needs a value")?.parse()?,
                "--rounds" => o.rounds = value(&a, args.next())?,
                "--json" => o.json = Some(value(&a, args.next())?),
                "--work-dir" => o.work_dir = value(&a, args.next())?,
                "--large-mib" => o.large_mib = value(&a, args.next())?,
                "--http-secs" => o.http_secs = value(&a, args.next())?,
                "--forks" => o.forks = value(&a, args.next())?,
                "--git-forks" => o.git_forks = Some(value(&a, args.next())?),
                "--scratch-fs" => o.scratch_fs = args.next().context("--scratch-fs needs a value")?.parse()?,
                flag if flag.starts_with('-') => bail!("unknown option '{flag}' (see --help)"),
                name => o.names.push(name.to_owned()),
            }
        }
        if o.rounds == 0 || o.http_secs == 0 || o.forks == 0 || o.large_mib < 2 {
            bail!("--rounds, --http-secs and --forks must be positive, --large-mib at least 2");
        }
        Ok(Parsed::Run(o))
    }
}

#[cfg(test)]
mod tests {
    use super::{Options, Parsed};
    use crate::corpus::CorpusKind;

    fn parse(args: &[&str]) -> anyhow::Result<Parsed> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn names_and_flags() -> anyhow::Result<()> {
        let Parsed::Run(o) = parse(&["fork", "--corpus", "small", "--rounds", "2", "import"])? else {
            panic!("expected a run");
        };
        assert_eq!(o.names, ["fork", "import"]);
        assert_eq!(o.corpus, CorpusKind::Small);
        assert_eq!(o.rounds, 2);
        assert!(parse(&["--corpus", "huge"]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--scratch-fs", "tmpfs"]).is_err());
        let Parsed::Run(o) = parse(&["--scratch-fs", "dir"])? else {
            panic!("expected a run");
        };
        assert_eq!(o.scratch_fs, crate::scratch_fs::ScratchFs::Dir);
        Ok(())
    }
}
