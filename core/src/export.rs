//! A session (or one of its revisions) as a tar stream: regular files with their mode, symlinks,
//! directories (empty ones included) and mtimes. The writer is fed as entries are produced; a
//! large file passes through one chunk at a time.

use std::io::Write;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::stat::DirEntry;
use crate::view::FileKind;

fn tar_err(e: std::io::Error) -> Error {
    Error::io("writing the archive")(e)
}

impl Engine {
    /// Write the session's files as tar (gzip-compressed when `gzip`) into `out`.
    pub async fn export_tar<W: Write + Send + 'static>(
        &self,
        id: &SessionId,
        at: Option<&str>,
        gzip: bool,
        out: W,
    ) -> Result<()> {
        let entries = self.list(id, "", true, at).await?;
        let at = at.map(str::to_owned);
        let engine = self.clone();
        let id = id.clone();
        let handle = tokio::runtime::Handle::current();
        crate::meta::sqlite::blocking(move || {
            let open = |path: &str| {
                handle
                    .block_on(engine.open_read(&id, path, 0, at.as_deref()))
                    .map(|(_, r)| r)
            };
            if gzip {
                let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                let gz = write_entries(tar::Builder::new(gz), entries, open)?;
                gz.finish().map_err(tar_err)?;
            } else {
                write_entries(tar::Builder::new(out), entries, open)?;
            }
            Ok(())
        })
        .await
    }
}

fn write_entries<W: Write, R: std::io::Read>(
    mut builder: tar::Builder<W>,
    entries: Vec<DirEntry>,
    open: impl Fn(&str) -> Result<R>,
) -> Result<W> {
    builder.follow_symlinks(false);
    for entry in entries {
        let st = entry.stat;
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.mode);
        header.set_mtime(u64::try_from(st.mtime_ns / 1_000_000_000).unwrap_or(0));
        match st.kind {
            FileKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", st.path), std::io::empty())
                    .map_err(tar_err)?;
            }
            FileKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = st.symlink_target.unwrap_or_default();
                builder.append_link(&mut header, &st.path, &target).map_err(tar_err)?;
            }
            FileKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(st.size);
                builder
                    .append_data(&mut header, &st.path, open(&st.path)?)
                    .map_err(tar_err)?;
            }
        }
    }
    builder.into_inner().map_err(tar_err)
}
