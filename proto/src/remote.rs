//! A client's connection to aetherd: one gRPC channel, the token in every request's
//! `authorization` metadata, a client of each service. The CLI and the mount both connect with
//! it (feature `client`), so anything embedding either needs only a server address and a token.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::MOUNT_HEADER;
use crate::v1::batch_service_client::BatchServiceClient;
use crate::v1::file_service_client::FileServiceClient;
use crate::v1::history_service_client::HistoryServiceClient;
use crate::v1::meta_service_client::MetaServiceClient;
use crate::v1::mount_service_client::MountServiceClient;
use crate::v1::session_service_client::SessionServiceClient;
use crate::v1::token_service_client::TokenServiceClient;
use crate::v1::usage_service_client::UsageServiceClient;

/// Largest message a client accepts (the server sends 256 KiB pieces).
const MAX_MESSAGE: usize = 16 << 20;
/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`Remote::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server address is not a URI tonic accepts.
    #[error("invalid server address '{server}': {reason}")]
    BadAddress { server: String, reason: String },
    /// Nothing answered at the address within the connect timeout.
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The token holds bytes an HTTP header cannot carry.
    #[error("the token contains characters that cannot be sent")]
    BadToken,
    /// The mount id holds bytes metadata cannot carry.
    #[error("the mount id '{0}' contains characters that cannot be sent")]
    BadMountId(String),
}

/// What every request carries: the token, and the mount id when the client is a mount.
#[derive(Clone)]
pub struct Credentials {
    bearer: Option<MetadataValue<Ascii>>,
    mount: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.bearer {
            req.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.mount {
            req.metadata_mut().insert(MOUNT_HEADER, v.clone());
        }
        Ok(req)
    }
}

/// A channel that sends the credentials with every request.
pub type Svc = InterceptedService<Channel, Credentials>;

/// Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct Remote {
    /// The server's address as given (for messages).
    pub server: String,
    channel: Channel,
    credentials: Credentials,
}

/// Every error of a chain that adds something, joined: tonic's transport errors say little at
/// the top.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

impl Remote {
    pub async fn connect(server: &str, token: Option<&str>) -> Result<Remote, ConnectError> {
        let endpoint = Endpoint::from_shared(server.to_owned()).map_err(|e| ConnectError::BadAddress {
            server: server.to_owned(),
            reason: chain(&e),
        })?;
        let channel =
            endpoint
                .connect_timeout(CONNECT_TIMEOUT)
                .connect()
                .await
                .map_err(|e| ConnectError::Unreachable {
                    server: server.to_owned(),
                    reason: chain(&e),
                })?;
        let bearer = match token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| ConnectError::BadToken)?),
            None => None,
        };
        Ok(Remote {
            server: server.to_owned(),
            channel,
            credentials: Credentials { bearer, mount: None },
        })
    }

    /// This connection, naming mount `id` in every request (the server records it as the
    /// origin of the changes).
    pub fn as_mount(&self, id: &str) -> Result<Remote, ConnectError> {
        let mount = Some(id.parse().map_err(|_| ConnectError::BadMountId(id.to_owned()))?);
        Ok(Remote {
            server: self.server.clone(),
            channel: self.channel.clone(),
            credentials: Credentials {
                mount,
                ..self.credentials.clone()
            },
        })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.credentials.clone())
    }

    pub fn sessions(&self) -> SessionServiceClient<Svc> {
        SessionServiceClient::new(self.svc()).max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn files(&self) -> FileServiceClient<Svc> {
        FileServiceClient::new(self.svc()).max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn mount(&self) -> MountServiceClient<Svc> {
        MountServiceClient::new(self.svc()).max_decoding_message_size(MAX_MESSAGE)
    }

    pub fn batch(&self) -> BatchServiceClient<Svc> {
        BatchServiceClient::new(self.svc())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub fn history(&self) -> HistoryServiceClient<Svc> {
        HistoryServiceClient::new(self.svc())
    }

    pub fn tokens(&self) -> TokenServiceClient<Svc> {
        TokenServiceClient::new(self.svc())
    }

    pub fn meta(&self) -> MetaServiceClient<Svc> {
        MetaServiceClient::new(self.svc())
    }

    pub fn usage(&self) -> UsageServiceClient<Svc> {
        UsageServiceClient::new(self.svc())
    }
}
