//! Serving git: ref advertisement, upload-pack negotiation and pack streaming, over byte
//! streams. A transport calls [`advertise`] for `info/refs` and [`upload_pack`] for a POSTed
//! request body, and copies the returned bytes or stream to the client. Requests are parsed and
//! checked completely before an answer starts, so a refusal is an error value (the transport
//! picks the status), never a half-written stream.

mod advertise;
mod delta;
mod fetch;
pub(crate) mod kept;
mod out;
mod pack;
pub mod pktline;
mod refs;
pub mod request;
mod reuse;
mod walk;
mod zcache;

use std::io::Read;

use aether_core::{Engine, SessionId};
use bytes::Bytes;
use gix::ObjectId;
use tokio::sync::mpsc;

pub use advertise::AGENT;
pub use fetch::Version;

use request::{Command, SideBand};

/// Largest (decompressed) request body accepted: wants and haves of a big negotiation fit.
pub const MAX_REQUEST: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The request broke the protocol (bad pkt-line, unknown command or argument).
    #[error("{0}")]
    Protocol(String),
    /// A want names an object that the session's refs do not reach.
    #[error("upload-pack: not our ref {0}")]
    NotOurRef(ObjectId),
    /// An object the session's refs reach is in neither store.
    #[error("object {0} is missing from the object database")]
    Missing(ObjectId),
    /// Stored data contradicts itself.
    #[error("{0}")]
    Corrupt(String),
    /// The request body is larger than [`MAX_REQUEST`].
    #[error("request body over {MAX_REQUEST} bytes")]
    TooLarge,
    #[error(transparent)]
    Core(#[from] aether_core::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The answer to `info/refs?service=git-upload-pack`.
pub async fn advertise(engine: &Engine, id: &SessionId, version: Version) -> Result<Vec<u8>, ServeError> {
    match version {
        Version::V2 => {
            // The capabilities do not depend on the session, but an unknown one is still a 404.
            engine.get_session(id).await?;
            Ok(advertise::v2_capabilities())
        }
        Version::V0 => Ok(advertise::v0_refs(&refs::client_refs(engine, id).await?)),
    }
}

/// The most a gzip'd request body may grow when decompressed, per byte sent (above
/// [`GZIP_FLOOR`]). Wants and haves are hex object ids, which gzip shrinks about 2:1; a body that
/// grows a hundredfold is a compression bomb, refused before it costs more.
pub const MAX_GZIP_RATIO: usize = 100;
/// What any gzip'd body may decompress to, whatever its ratio.
pub const GZIP_FLOOR: usize = 1 << 20;

/// Decode a request body (`Content-Encoding: gzip` when `gzip`), refusing anything over
/// [`MAX_REQUEST`] and a gzip'd body that decompresses to more than [`MAX_GZIP_RATIO`] times
/// its size. CPU-bound: call it on a blocking thread ([`decode_body_blocking`]).
pub fn decode_body(body: &[u8], gzip: bool) -> Result<Vec<u8>, ServeError> {
    if !gzip {
        if body.len() > MAX_REQUEST {
            return Err(ServeError::TooLarge);
        }
        return Ok(body.to_vec());
    }
    let allowed = body.len().saturating_mul(MAX_GZIP_RATIO).clamp(GZIP_FLOOR, MAX_REQUEST);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(allowed as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ServeError::Protocol(format!("request body is not valid gzip: {e}")))?;
    if out.len() > MAX_REQUEST {
        return Err(ServeError::TooLarge);
    }
    if out.len() > allowed {
        return Err(ServeError::Protocol(format!(
            "the gzip'd request body ({} bytes) decompresses to more than {MAX_GZIP_RATIO} times its size",
            body.len()
        )));
    }
    Ok(out)
}

/// [`decode_body`] on tokio's blocking pool: gunzip never runs on the async workers.
pub async fn decode_body_blocking(body: Bytes, gzip: bool) -> Result<Vec<u8>, ServeError> {
    if !gzip {
        return decode_body(&body, false);
    }
    tokio::task::spawn_blocking(move || decode_body(&body, true))
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(format!("decoding the request body: {e}"))))?
}

/// The answer to a POST to `git-upload-pack`: a stream of response bytes. Protocol errors,
/// unknown sessions and wants outside the session fail here, before anything is sent.
pub async fn upload_pack(
    engine: &Engine,
    id: &SessionId,
    version: Version,
    body: Vec<u8>,
) -> Result<mpsc::Receiver<Bytes>, ServeError> {
    let (tx, rx) = mpsc::channel(out::CHANNEL_DEPTH);
    let (args, version) = match version {
        Version::V2 => match request::parse_v2(&body)? {
            Command::LsRefs(args) => {
                let refs = refs::client_refs(engine, id).await?;
                tx.try_send(Bytes::from(advertise::ls_refs(&refs, &args)))
                    .map_err(|_| ServeError::Protocol("internal: response channel full".into()))?;
                return Ok(rx);
            }
            Command::Fetch(args) => (args, Version::V2),
        },
        Version::V0 => (request::parse_v0(&body)?, Version::V0),
    };
    let refs = refs::client_refs(engine, id).await?;
    let tips: Vec<ObjectId> = refs.iter().map(|r| r.target).collect();
    let objects = engine.objects().clone();
    let prepared = {
        let objects = objects.clone();
        tokio::task::spawn_blocking(move || fetch::prepare(&objects, &tips, version, args))
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))??
    };
    let (band, all, progress) = prepared.framing();
    tokio::task::spawn_blocking(move || {
        let mut out = out::Out::new(tx, band, all, progress);
        fetch::stream(&objects, prepared, &mut out);
    });
    Ok(rx)
}

impl fetch::Prepared {
    /// Side-band mode, `sideband-all`, and whether progress is wanted.
    fn framing(&self) -> (SideBand, bool, bool) {
        let a = self.args();
        (a.side_band.unwrap_or(SideBand::None), a.sideband_all, !a.no_progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bodies_are_decoded_and_garbage_refused() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"0009done\n").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode_body(&gz, true).unwrap(), b"0009done\n");
        assert!(matches!(decode_body(b"not gzip", true), Err(ServeError::Protocol(_))));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_refused_and_a_real_negotiation_is_not() {
        // 60 MiB of one byte: under MAX_REQUEST, but about 60 KiB sent (a thousandfold).
        let bomb = gzip(&vec![b'0'; 60 << 20]);
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        match decode_body(&bomb, true) {
            Err(ServeError::Protocol(m)) => assert!(m.contains("times its size"), "{m}"),
            other => panic!("a bomb decoded: {:?}", other.map(|b| b.len())),
        }
        // 200k haves: hex ids shrink about 2:1, far above the floor, and decode whole.
        let mut haves = Vec::new();
        let mut x = 1u64;
        for _ in 0..200_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            haves.extend_from_slice(format!("0032have {x:016x}{x:016x}{:08x}\n", x as u32).as_bytes());
        }
        assert!(haves.len() > GZIP_FLOOR * 8);
        assert_eq!(decode_body(&gzip(&haves), true).unwrap(), haves);
    }
}
