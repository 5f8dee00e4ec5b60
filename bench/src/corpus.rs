//! The source trees the tree benchmarks work on, prepared once and cached in the work directory
//! between runs: Debian's linux-source-6.1 tarball when it is installed, otherwise a synthetic
//! tree of the same shape written by `fixtures/make_linux_like_tree.py`, or a small tree of that
//! shape for quick runs. Each corpus exists as an extracted tree and as an uncompressed tar.
//!
//! A cache entry is built in a `.partial` directory and renamed into place when complete, so an
//! interrupted preparation is redone rather than used.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::fixture::command::run;

/// Debian's kernel source (`apt-get install linux-source-6.1`).
pub const KERNEL_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// Files in the `small` corpus.
pub const SMALL_FILES: usize = 400;
/// The generator, embedded so the cache key changes whenever the script does.
const GENERATOR: &str = include_str!("../../fixtures/make_linux_like_tree.py");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusKind {
    /// The kernel tarball if present, else the synthetic tree of the same shape.
    Linux,
    Small,
}

impl FromStr for CorpusKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linux" => Ok(CorpusKind::Linux),
            "small" => Ok(CorpusKind::Small),
            other => bail!("unknown corpus '{other}' (linux or small)"),
        }
    }
}

/// What a prepared corpus holds, stored next to it as `corpus.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Where it came from, for the report.
    pub name: String,
    pub files: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Corpus {
    pub summary: Summary,
    /// The extracted tree (what git adds).
    pub tree: PathBuf,
    /// The same tree as an uncompressed tar (what the engine imports).
    pub tar: PathBuf,
    /// Every regular file, relative to `tree`, sorted.
    pub files: Vec<String>,
}

/// Where a corpus comes from; `key` names its cache directory.
enum Source {
    Tarball(PathBuf),
    Synthetic { files: usize },
}

impl Source {
    fn pick(kind: CorpusKind) -> Source {
        match kind {
            CorpusKind::Linux if Path::new(KERNEL_TARBALL).is_file() => Source::Tarball(KERNEL_TARBALL.into()),
            CorpusKind::Linux => Source::Synthetic { files: 78_579 },
            CorpusKind::Small => Source::Synthetic { files: SMALL_FILES },
        }
    }

    fn key(&self) -> Result<String> {
        Ok(match self {
            Source::Tarball(p) => {
                let len = std::fs::metadata(p)
                    .with_context(|| format!("reading {}", p.display()))?
                    .len();
                format!("linux-source-6.1-{len}")
            }
            Source::Synthetic { files } => {
                let h = blake3::hash(GENERATOR.as_bytes()).to_hex();
                format!("synthetic-{files}-{}", &h[..12])
            }
        })
    }

    fn name(&self) -> String {
        match self {
            Source::Tarball(p) => format!("linux-source-6.1 ({})", p.display()),
            Source::Synthetic { files } => {
                format!("synthetic linux-like tree of {files} files (fixtures/make_linux_like_tree.py)")
            }
        }
    }

    /// Write the tree under `dir/tree` and the tar at `dir/corpus.tar`.
    fn build(&self, dir: &Path) -> Result<()> {
        let tree = dir.join("tree");
        let tar = dir.join("corpus.tar");
        std::fs::create_dir_all(&tree).with_context(|| format!("creating {}", tree.display()))?;
        match self {
            Source::Tarball(src) => {
                let out = std::fs::File::create(&tar).with_context(|| format!("creating {}", tar.display()))?;
                let status = Command::new("xz")
                    .args(["-dc", "-T0"])
                    .arg(src)
                    .stdout(out)
                    .status()
                    .context("starting xz")?;
                if !status.success() {
                    bail!("xz -dc {} failed ({status})", src.display());
                }
                run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&tree))?;
            }
            Source::Synthetic { files } => {
                let script = dir.join("make_linux_like_tree.py");
                std::fs::write(&script, GENERATOR).context("writing the generator")?;
                run(&mut generator(&script, &tree, *files))?;
                let mut top: Vec<String> = std::fs::read_dir(&tree)
                    .context("listing the generated tree")?
                    .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
                    .collect::<std::io::Result<_>>()
                    .context("listing the generated tree")?;
                top.sort();
                run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&tree).args(&top))?;
            }
        }
        Ok(())
    }
}

/// `python3 make_linux_like_tree.py OUT --files N`.
pub fn generator(script: &Path, out: &Path, files: usize) -> Command {
    let mut c = Command::new("python3");
    c.arg(script).arg(out).arg("--files").arg(files.to_string());
    c
}

/// Regular files below `root` (relative, sorted) and their total size; symlinks are not followed.
pub fn walk(root: &Path) -> Result<(Vec<String>, u64)> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>, bytes: &mut u64) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let ft = entry.file_type().context("reading a file type")?;
            let path = entry.path();
            if ft.is_dir() {
                go(root, &path, out, bytes)?;
            } else if ft.is_file() {
                *bytes += entry.metadata().context("reading file metadata")?.len();
                let rel = path.strip_prefix(root).context("a path outside the tree")?;
                out.push(rel.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let (mut files, mut bytes) = (Vec::new(), 0);
    go(root, root, &mut files, &mut bytes)?;
    files.sort();
    Ok((files, bytes))
}

impl Corpus {
    /// The corpus of `kind`, from the cache in `work_dir/corpus/` or built there now.
    pub fn prepare(kind: CorpusKind, work_dir: &Path) -> Result<Corpus> {
        let source = Source::pick(kind);
        let dir = work_dir.join("corpus").join(source.key()?);
        let meta = dir.join("corpus.json");
        if !meta.is_file() {
            let partial = dir.with_extension("partial");
            if partial.exists() {
                std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
            }
            eprintln!("corpus: preparing {} in {}", source.name(), dir.display());
            let t = Instant::now();
            source.build(&partial)?;
            let (files, bytes) = walk(&partial.join("tree"))?;
            let summary = Summary {
                name: source.name(),
                files: files.len(),
                bytes,
            };
            let text = serde_json::to_string_pretty(&summary).context("serializing the corpus summary")?;
            std::fs::write(partial.join("corpus.json"), text).context("writing corpus.json")?;
            std::fs::rename(&partial, &dir).with_context(|| format!("renaming {}", partial.display()))?;
            eprintln!("corpus: prepared in {:.1} s", t.elapsed().as_secs_f64());
        }
        let text = std::fs::read_to_string(&meta).with_context(|| format!("reading {}", meta.display()))?;
        let summary: Summary = serde_json::from_str(&text).with_context(|| format!("parsing {}", meta.display()))?;
        let tree = dir.join("tree");
        let (files, bytes) = walk(&tree)?;
        if files.len() != summary.files || bytes != summary.bytes {
            bail!(
                "the cached corpus in {} changed ({} files, {bytes} bytes; expected {} and {}): remove it",
                dir.display(),
                files.len(),
                summary.files,
                summary.bytes
            );
        }
        eprintln!(
            "corpus: {}: {} files, {:.1} MB",
            summary.name,
            summary.files,
            summary.bytes as f64 / 1e6
        );
        Ok(Corpus {
            summary,
            tree,
            tar: dir.join("corpus.tar"),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{CorpusKind, generator, walk};
    use crate::fixture::command::run;

    /// Every entry below `root` (path, kind, mode, content hash or link target), in order.
    fn manifest(root: &Path) -> anyhow::Result<Vec<String>> {
        use std::os::unix::fs::PermissionsExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let rel = path.strip_prefix(root)?.display().to_string();
                let meta = std::fs::symlink_metadata(&path)?;
                if meta.is_dir() {
                    stack.push(path);
                    out.push(format!("d {rel}"));
                } else if meta.file_type().is_symlink() {
                    out.push(format!("l {rel} -> {}", std::fs::read_link(&path)?.display()));
                } else {
                    let hash = blake3::hash(&std::fs::read(&path)?);
                    out.push(format!("f {rel} {:o} {hash}", meta.permissions().mode()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    #[test]
    fn generator_is_deterministic_and_sized() -> anyhow::Result<()> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/make_linux_like_tree.py");
        let tmp = tempfile::tempdir()?;
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let printed = run(&mut generator(&script, &a, 120))?;
        run(&mut generator(&script, &b, 120))?;
        assert_eq!(manifest(&a)?, manifest(&b)?);
        let (files, bytes) = walk(&a)?;
        assert_eq!(files.len(), 120);
        assert!(printed.starts_with(&format!("files 120 bytes {bytes} ")), "{printed}");
        // Many small files and a long tail, like the kernel: median under 8 KB, mean above it.
        let mut sizes: Vec<u64> = files
            .iter()
            .map(|f| std::fs::metadata(a.join(f)).map(|m| m.len()))
            .collect::<std::io::Result<_>>()?;
        sizes.sort();
        assert!(sizes[60] < 8_000 && bytes / 120 > sizes[60], "{sizes:?}");
        assert!(files.iter().any(|f| f.matches('/').count() >= 5), "no deep files");
        Ok(())
    }

    #[test]
    fn corpus_names_parse() {
        assert_eq!("linux".parse::<CorpusKind>().ok(), Some(CorpusKind::Linux));
        assert_eq!("small".parse::<CorpusKind>().ok(), Some(CorpusKind::Small));
        assert!("other".parse::<CorpusKind>().is_err());
    }
}
