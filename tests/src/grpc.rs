//! The gRPC surface (`aether.v1`), as a blocking client over the generated stubs. Every call has
//! a time limit; a stream that does not end within it is [`GrpcError::Timeout`].

use std::time::Duration;

use aether_proto::v1 as pb;
use pb::batch_service_client::BatchServiceClient;
use pb::file_service_client::FileServiceClient;
use pb::history_service_client::HistoryServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::runtime::block_on_for;

pub const LIMIT: Duration = Duration::from_secs(60);
/// Largest message accepted or sent (the server sends pieces far smaller).
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Clone)]
pub enum GrpcError {
    Timeout(Duration),
    Status {
        code: tonic::Code,
        aether_code: String,
        message: String,
    },
    /// The reply broke a promise of the contract (offsets with a gap, no stat first).
    Contract(String),
}

impl std::fmt::Display for GrpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrpcError::Timeout(d) => write!(f, "no complete reply within {d:?}"),
            GrpcError::Status {
                code,
                aether_code,
                message,
            } => write!(f, "{code:?} ({aether_code}): {message}"),
            GrpcError::Contract(m) => write!(f, "broken contract: {m}"),
        }
    }
}

impl From<tonic::Status> for GrpcError {
    fn from(s: tonic::Status) -> Self {
        GrpcError::Status {
            code: s.code(),
            aether_code: s
                .metadata()
                .get("aether-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            message: s.message().to_owned(),
        }
    }
}

#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// What `ReadFile` returned: the stat of its first message and the bytes of all of them.
#[derive(Debug, Clone)]
pub struct Read {
    pub stat: pb::Stat,
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct Grpc {
    channel: Channel,
    bearer: Bearer,
}

impl Grpc {
    pub fn connect(url: &str, token: &str) -> Grpc {
        let endpoint = Endpoint::from_shared(url.to_owned()).expect("a valid server URL");
        let channel = block_on_for(Duration::from_secs(30), async move {
            endpoint.connect_timeout(Duration::from_secs(10)).connect().await
        })
        .expect("gRPC connects within 30 s")
        .unwrap_or_else(|e| panic!("gRPC connection to {url}: {e}"));
        let bearer = Bearer(format!("Bearer {token}").parse().expect("an ASCII token"));
        Grpc { channel, bearer }
    }

    fn files(&self) -> FileServiceClient<Svc> {
        FileServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn batch_client(&self) -> BatchServiceClient<Svc> {
        BatchServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn history(&self) -> HistoryServiceClient<Svc> {
        HistoryServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// `ReadFile` from `offset` (at most `length` bytes), the whole stream collected. The
    /// messages must carry contiguous offsets starting at `offset`, the first one the stat.
    pub fn read_file(
        &self,
        session: &str,
        path: &str,
        offset: u64,
        length: Option<u64>,
        at: Option<&str>,
        limit: Duration,
    ) -> Result<Read, GrpcError> {
        let mut client = self.files();
        let req = pb::ReadFileRequest {
            session: session.to_owned(),
            path: path.to_owned(),
            at: at.map(str::to_owned),
            offset,
            length,
            content_id: None,
            opened: false,
        };
        block_on_for(limit, async move {
            let mut stream = client.read_file(req).await?.into_inner();
            let mut stat = None;
            let mut data = Vec::new();
            let mut first = true;
            while let Some(msg) = stream.message().await? {
                if first {
                    stat = msg.stat.clone();
                    first = false;
                }
                let want = offset + data.len() as u64;
                if msg.offset != want {
                    return Err(GrpcError::Contract(format!(
                        "a message at offset {} where {want} was next",
                        msg.offset
                    )));
                }
                data.extend_from_slice(&msg.data);
            }
            let stat = stat.ok_or_else(|| GrpcError::Contract("no stat in the first message".into()))?;
            Ok(Read { stat, data })
        })
        .unwrap_or(Err(GrpcError::Timeout(limit)))
    }

    /// `WriteFile` of a whole file, streamed in pieces of `piece` bytes.
    pub fn write_file(
        &self,
        session: &str,
        path: &str,
        data: &[u8],
        mode: Option<u32>,
        piece: usize,
    ) -> Result<pb::Stat, GrpcError> {
        self.write_file_at(session, path, 0, data, mode, piece)
    }

    /// `WriteFile` at `offset`: with `offset > 0`, a resumed upload (the file's first `offset`
    /// bytes stay, `data` replaces everything after them).
    pub fn write_file_at(
        &self,
        session: &str,
        path: &str,
        offset: u64,
        data: &[u8],
        mode: Option<u32>,
        piece: usize,
    ) -> Result<pb::Stat, GrpcError> {
        let mut msgs = Vec::new();
        let mut pieces = data.chunks(piece.max(1)).peekable();
        let first = pieces.next().unwrap_or_default();
        msgs.push(pb::WriteFileRequest {
            session: session.to_owned(),
            path: path.to_owned(),
            mode,
            no_parents: false,
            size: Some(data.len() as u64),
            offset,
            mtime_ns: None,
            data: first.to_vec(),
        });
        for p in pieces {
            msgs.push(pb::WriteFileRequest {
                data: p.to_vec(),
                ..Default::default()
            });
        }
        let mut client = self.files();
        block_on_for(LIMIT, async move {
            Ok(client.write_file(futures_util::stream::iter(msgs)).await?.into_inner())
        })
        .unwrap_or(Err(GrpcError::Timeout(LIMIT)))
    }

    pub fn apply_batch(
        &self,
        session: &str,
        changes: Vec<pb::BatchChange>,
    ) -> Result<pb::ApplyBatchResponse, GrpcError> {
        let mut client = self.batch_client();
        let req = pb::ApplyBatchRequest {
            session: session.to_owned(),
            changes,
        };
        block_on_for(LIMIT, async move { Ok(client.apply_batch(req).await?.into_inner()) })
            .unwrap_or(Err(GrpcError::Timeout(LIMIT)))
    }

    pub fn list_tree(
        &self,
        session: &str,
        path: &str,
        recursive: bool,
        at: Option<&str>,
        limit: Duration,
    ) -> Result<pb::Listing, GrpcError> {
        let mut client = self.files();
        let req = pb::ListTreeRequest {
            session: session.to_owned(),
            path: path.to_owned(),
            recursive,
            at: at.map(str::to_owned),
        };
        block_on_for(limit, async move { Ok(client.list_tree(req).await?.into_inner()) })
            .unwrap_or(Err(GrpcError::Timeout(limit)))
    }

    pub fn stat(&self, session: &str, path: &str, at: Option<&str>) -> Result<pb::Stat, GrpcError> {
        let mut client = self.files();
        let req = pb::StatRequest {
            session: session.to_owned(),
            path: path.to_owned(),
            at: at.map(str::to_owned),
            content_id: None,
        };
        block_on_for(LIMIT, async move { Ok(client.stat(req).await?.into_inner()) })
            .unwrap_or(Err(GrpcError::Timeout(LIMIT)))
    }

    /// `CreateCheckpoint`.
    pub fn checkpoint(&self, session: &str) -> Result<pb::Checkpoint, GrpcError> {
        let mut client = self.history();
        let req = pb::CreateCheckpointRequest {
            session: session.to_owned(),
            message: Some("integrity checkpoint (gRPC)".into()),
        };
        block_on_for(
            LIMIT,
            async move { Ok(client.create_checkpoint(req).await?.into_inner()) },
        )
        .unwrap_or(Err(GrpcError::Timeout(LIMIT)))
    }
}
