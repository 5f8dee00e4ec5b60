//! The gRPC connection: one channel, the token in every request's `authorization` metadata.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use aether_proto::v1::batch_service_client::BatchServiceClient;
use aether_proto::v1::file_service_client::FileServiceClient;
use aether_proto::v1::history_service_client::HistoryServiceClient;
use aether_proto::v1::meta_service_client::MetaServiceClient;
use aether_proto::v1::mount_service_client::MountServiceClient;
use aether_proto::v1::session_service_client::SessionServiceClient;
use aether_proto::v1::token_service_client::TokenServiceClient;

use crate::config::Resolved;
use crate::error::{CliError, Result, chain};

/// Largest message the CLI accepts (the server sends 256 KiB pieces).
const MAX_MESSAGE: usize = 16 << 20;
/// Size of the pieces the CLI streams up.
pub const PIECE: usize = 1 << 20;

#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct Client {
    pub server: String,
    channel: Channel,
    bearer: Bearer,
}

impl Client {
    pub async fn connect(cfg: &Resolved) -> Result<Client> {
        let endpoint = Endpoint::from_shared(cfg.server.clone()).map_err(|e| {
            CliError::usage(
                format!("invalid server address '{}': {}", cfg.server, chain(&e)),
                "give --server as http://host:port",
            )
        })?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| CliError::unreachable(&cfg.server, chain(&e)))?;
        let bearer = match &cfg.token {
            Some(t) => Bearer(Some(format!("Bearer {t}").parse().map_err(|_| {
                CliError::new(
                    crate::error::Kind::Auth,
                    "the token contains characters that cannot be sent",
                    "check --token, AETHER_TOKEN or the config file",
                )
            })?)),
            None => Bearer(None),
        };
        Ok(Client {
            server: cfg.server.clone(),
            channel,
            bearer,
        })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
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

    /// Map a failed call's status to a CLI error.
    pub fn err(&self, s: Status) -> CliError {
        CliError::from_status(&s, &self.server)
    }
}
