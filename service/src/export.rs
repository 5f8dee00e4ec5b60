//! Tar and tar.gz export of a session or one of its revisions. Checked (access, format, that
//! the session and revision exist) before any byte is sent; the bytes are then written by
//! [`Export::write_to`] into whatever the surface streams from.

use std::io::Write;

use aether_core::{Engine, SessionId};

use crate::Service;
use crate::error::{Result, ServiceError};
use crate::principal::{Access, Principal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportFormat {
    #[default]
    Tar,
    TarGz,
}

impl ExportFormat {
    /// `tar`, `tar.gz` or `tgz`; anything else is `invalid_argument`.
    pub fn parse(s: &str) -> Result<ExportFormat> {
        match s {
            "tar" => Ok(ExportFormat::Tar),
            "tar.gz" | "tgz" => Ok(ExportFormat::TarGz),
            other => Err(ServiceError::invalid(format!(
                "format must be tar or tar.gz, got '{other}'"
            ))),
        }
    }

    /// The usual file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Tar => "tar",
            ExportFormat::TarGz => "tar.gz",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ExportTar {
    pub session: String,
    pub at: Option<String>,
    pub format: ExportFormat,
}

/// An export that passed its checks, ready to be written.
pub struct Export {
    engine: Engine,
    pub session: SessionId,
    pub format: ExportFormat,
    at: Option<String>,
    /// Held until the archive is written: the writer runs on a blocking thread throughout.
    job: crate::admission::Job,
}

impl Export {
    /// Write the archive into `out` (a blocking writer). An error here comes after bytes may
    /// have been sent: the surface must end its stream broken, never cleanly.
    pub async fn write_to<W: Write + Send + 'static>(self, out: W) -> Result<()> {
        let gzip = self.format == ExportFormat::TarGz;
        let result = self
            .engine
            .export_tar(&self.session, self.at.as_deref(), gzip, out)
            .await;
        drop(self.job);
        Ok(result?)
    }
}

impl Service {
    pub async fn export_tar(&self, p: &Principal, req: ExportTar) -> Result<Export> {
        let id = self.session(p, &req.session, Access::Read)?;
        self.observe("export", &id, None, async {
            self.recall_live(p, &id, req.at.as_deref(), "export").await;
            let job = self.admit_heavy(p, "export")?;
            // Fail before the stream starts when the session or revision does not exist.
            self.engine_for(p).stat(&id, "", req.at.as_deref()).await?;
            Ok(Export {
                engine: self.engine_for(p).clone(),
                session: id.clone(),
                format: req.format,
                at: req.at,
                job,
            })
        })
        .await
    }
}
