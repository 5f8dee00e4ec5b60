//! The gRPC connection: `aether_proto::remote::Remote` (one channel, the token in every request's
//! `authorization` metadata, a client of each service), with its failures as CLI errors.

use std::ops::Deref;

use tonic::Status;

use aether_proto::remote::{ConnectError, Remote};

use crate::config::Resolved;
use crate::error::{CliError, Kind, Result};

/// Cheap to clone: clones share one connection. Derefs to [`Remote`] for the service clients.
#[derive(Clone)]
pub struct Client {
    remote: Remote,
}

impl Client {
    pub async fn connect(cfg: &Resolved) -> Result<Client> {
        Ok(Client {
            remote: connect(cfg).await?,
        })
    }

    /// Map a failed call's status to a CLI error.
    pub fn err(&self, s: Status) -> CliError {
        CliError::from_status(&s, &self.remote.server)
    }
}

impl Deref for Client {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

/// Connect to the server `cfg` names, with the CLI's messages and hints for each failure.
pub async fn connect(cfg: &Resolved) -> Result<Remote> {
    Remote::connect(&cfg.server, cfg.token.as_deref())
        .await
        .map_err(|e| match e {
            ConnectError::BadAddress { .. } => CliError::usage(e.to_string(), "give --server as http://host:port"),
            ConnectError::Unreachable { server, reason } => CliError::unreachable(&server, reason),
            ConnectError::BadToken => CliError::new(
                Kind::Auth,
                e.to_string(),
                "check --token, AETHER_TOKEN or the config file",
            ),
            // The CLI names no mount; a mount makes its own id.
            ConnectError::BadMountId(_) => CliError::new(Kind::Other, e.to_string(), ""),
        })
}
