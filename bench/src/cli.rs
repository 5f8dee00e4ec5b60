//! Command-line options, parsed by hand (a handful of flags does not need a parser crate).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::benches::Bench;

#[derive(Debug, Clone)]
pub struct Options {
    /// Benchmarks to run; empty means all.
    pub names: Vec<String>,
    /// Rounds of alternating ours/reference measurements per benchmark.
    pub rounds: usize,
    pub json: Option<PathBuf>,
    /// Parent of the scratch directory (default: the system temp directory).
    pub work_dir: Option<PathBuf>,
    /// Files in the large synthetic tree used by `fork` and `checkpoint`.
    pub files: usize,
    /// Size of the file `ingest` writes.
    pub ingest_mib: u64,
    /// Size of the file `small-edit` changes.
    pub edit_mib: u64,
    /// Size of the file `http-large` uploads and downloads.
    pub http_mib: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            names: Vec::new(),
            rounds: 5,
            json: None,
            work_dir: None,
            files: 100_000,
            ingest_mib: 1024,
            edit_mib: 256,
            http_mib: 2048,
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
        "usage: aether-bench [NAMES...] [--rounds N] [--json FILE] [--work-dir DIR]\n\
         \x20                   [--files N] [--ingest-mib N] [--edit-mib N] [--http-mib N] [--list]\n\n\
         Runs the named benchmarks (all when none is named), ours and the reference alternating.\n\n\
         benchmarks:\n",
    );
    for b in benches {
        s.push_str(&format!("  {:<12} {}\n", b.name(), b.about()));
    }
    let d = Options::default();
    s.push_str(&format!(
        "\noptions:\n  --rounds N      rounds per benchmark (default {})\n  --json FILE     also write all samples as JSON\n  \
         --work-dir DIR  where scratch data goes (default: the temp directory)\n  \
         --files N       files in the large tree (default {})\n  \
         --ingest-mib N  size of the ingested file (default {})\n  \
         --edit-mib N    size of the edited file (default {})\n  \
         --http-mib N    size of the file sent over HTTP (default {})\n",
        d.rounds, d.files, d.ingest_mib, d.edit_mib, d.http_mib
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
                "--rounds" => o.rounds = value(&a, args.next())?,
                "--json" => o.json = Some(value(&a, args.next())?),
                "--work-dir" => o.work_dir = Some(value(&a, args.next())?),
                "--files" => o.files = value(&a, args.next())?,
                "--ingest-mib" => o.ingest_mib = value(&a, args.next())?,
                "--edit-mib" => o.edit_mib = value(&a, args.next())?,
                "--http-mib" => o.http_mib = value(&a, args.next())?,
                flag if flag.starts_with('-') => bail!("unknown option '{flag}' (see --help)"),
                name => o.names.push(name.to_owned()),
            }
        }
        if o.rounds == 0 || o.files < 10 || o.ingest_mib == 0 || o.http_mib < 2 || o.edit_mib < 2 {
            bail!(
                "--rounds and --ingest-mib must be positive, --files at least 10, --edit-mib and --http-mib at least 2"
            );
        }
        Ok(Parsed::Run(o))
    }
}
