//! A fresh file system for one side of one round of a mount benchmark.
//!
//! Measuring both sides in directories of one long-lived file system made the reference drift.
//! On this project's VMs the root file system is an ext4 without a journal, mounted with online
//! discard, and many earlier runs' files came and went on it. Every round deletes thousands of
//! files, and each round's native git workload was slower than the last (2.4 s, then 3.6, 4.6,
//! 6.1 and 6.8 s in one run): the medians compared the mount against a slowed-down reference.
//! On a fresh journaled ext4 the same native workload did not drift (2.48, 2.27, 2.39 s). (Why
//! the root drifts is not proven: a journal-less ext4 scans past inodes freed in the last ~30 s
//! when it allocates, and online discard costs at every delete.)
//!
//! So by default each side of each round gets its own new ext4 (journaled, mkfs's default
//! features) on
//! a loop device over an image file in the scratch directory, mounted for that side and removed
//! after it: the native directory on one side; the server's data directory, the mount's cache
//! and the mount point on the other. Both start from the same empty state every time.
//! `--scratch-fs dir` measures in plain directories of the work directory instead (no root
//! needed, but the numbers then depend on that file system's history).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::ctx::{Ctx, remove};
use crate::fixture::command::run;

/// Where the mount benchmarks put each side's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchFs {
    /// A new loop-mounted ext4 per side and round (the default).
    Ext4Image,
    /// A directory in the work directory's file system.
    Dir,
}

impl std::str::FromStr for ScratchFs {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<ScratchFs> {
        match s {
            "ext4" => Ok(ScratchFs::Ext4Image),
            "dir" => Ok(ScratchFs::Dir),
            other => bail!("unknown scratch file system '{other}': use ext4 or dir"),
        }
    }
}

/// Size of each image: room for the untar subset with the server's copy of it, or a git
/// history clone, many times over. The file is sparse; only what is written takes disk space.
const IMAGE_BYTES: u64 = 16 << 30;

/// A directory on a file system of its own, unmounted and removed on drop.
pub struct SideFs {
    path: PathBuf,
    image: Option<Image>,
}

struct Image {
    file: PathBuf,
    device: String,
}

impl SideFs {
    /// A fresh, empty directory `name` for one side of a round.
    pub fn new(ctx: &Ctx, name: &str) -> Result<SideFs> {
        let path = ctx.dir(name)?;
        match ctx.opts.scratch_fs {
            ScratchFs::Dir => Ok(SideFs { path, image: None }),
            ScratchFs::Ext4Image => {
                let file = path.with_extension("img");
                let image = Image::create(&file, &path).with_context(|| {
                    format!(
                        "making a fresh ext4 for {name} (needs root, mkfs.ext4 and losetup; \
                         --scratch-fs dir measures in the work directory instead)"
                    )
                })?;
                Ok(SideFs {
                    path,
                    image: Some(image),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Image {
    fn create(file: &Path, at: &Path) -> Result<Image> {
        let f = std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
        f.set_len(IMAGE_BYTES)
            .with_context(|| format!("sizing {}", file.display()))?;
        drop(f);
        // Inode tables and journal written now, so no background initialisation runs during the
        // measurement; no discard of a file that is all holes anyway.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard"])
            .arg(file))?;
        // Direct I/O to the image, so its pages are not cached twice (once above the loop
        // device, once in the image file's own page cache).
        let device = run(Command::new("losetup")
            .args(["--direct-io=on", "--find", "--show"])
            .arg(file))?
        .trim()
        .to_owned();
        let image = Image {
            file: file.to_path_buf(),
            device,
        };
        run(Command::new("mount").arg(&image.device).arg(at))?;
        Ok(image)
    }
}

impl Drop for SideFs {
    fn drop(&mut self) {
        match self.image.take() {
            None => {
                if let Err(e) = remove(&self.path) {
                    eprintln!("warning: {e:#}");
                }
            }
            Some(image) => {
                let unmounted = Command::new("umount")
                    .arg(&self.path)
                    .status()
                    .is_ok_and(|s| s.success());
                if !unmounted {
                    // Something still holds a file there; detach it so the run can go on, the
                    // kernel frees it when the holder lets go.
                    eprintln!("warning: {} is busy; detaching it lazily", self.path.display());
                    let _ = Command::new("umount").arg("-l").arg(&self.path).status();
                }
                // Often detached already by the unmount (the kernel clears a loop device that
                // was set up for one mount); then this says so on stderr, harmlessly.
                let _ = Command::new("losetup")
                    .arg("-d")
                    .arg(&image.device)
                    .stderr(std::process::Stdio::null())
                    .status();
                let _ = std::fs::remove_file(&image.file);
                let _ = std::fs::remove_dir(&self.path);
            }
        }
    }
}
