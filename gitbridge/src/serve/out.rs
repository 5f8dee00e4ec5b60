//! The response stream: pkt-lines, side-band data and progress pushed into a bounded channel
//! that the transport drains. Blocking sends give backpressure: a slow client slows the pack
//! writer instead of growing memory. A closed channel (client gone) fails the next write.

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use super::pktline::{self, MAX_SIDEBAND_DATA};
use super::request::SideBand;

/// How many messages may wait in the channel; with 64 KiB messages about 1 MiB.
pub const CHANNEL_DEPTH: usize = 16;

pub struct Out {
    tx: Sender<Bytes>,
    band: SideBand,
    /// Wrap every packet (acknowledgments, shallow-info) in band 1 (v2 `sideband-all`).
    all: bool,
    progress: bool,
    /// Pack bytes waiting to fill a packet.
    buf: Vec<u8>,
    /// Bytes sent so far.
    pub sent: u64,
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
}

impl Out {
    pub fn new(tx: Sender<Bytes>, band: SideBand, all: bool, progress: bool) -> Self {
        Out {
            tx,
            band,
            all,
            progress: progress && band != SideBand::None,
            buf: Vec::with_capacity(MAX_SIDEBAND_DATA),
            sent: 0,
        }
    }

    fn max_payload(&self) -> usize {
        match self.band {
            SideBand::Small => 995,
            SideBand::Large => MAX_SIDEBAND_DATA,
            SideBand::None => 64 << 10,
        }
    }

    fn send(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.sent += bytes.len() as u64;
        self.tx.blocking_send(Bytes::from(bytes)).map_err(|_| gone())
    }

    /// A protocol line (ack, shallow-info, section header), side-band wrapped under `sideband-all`.
    pub fn line(&mut self, text: &str) -> std::io::Result<()> {
        let mut packet = Vec::new();
        pktline::text(&mut packet, text);
        if self.all {
            let mut wrapped = Vec::new();
            pktline::sideband(&mut wrapped, 1, &packet[4..]);
            return self.send(wrapped);
        }
        self.send(packet)
    }

    pub fn flush_pkt(&mut self) -> std::io::Result<()> {
        self.send(b"0000".to_vec())
    }

    pub fn delim_pkt(&mut self) -> std::io::Result<()> {
        self.send(b"0001".to_vec())
    }

    /// A progress message on band 2, unless the client asked for none.
    pub fn progress(&mut self, msg: &str) -> std::io::Result<()> {
        if !self.progress {
            return Ok(());
        }
        let mut packet = Vec::new();
        pktline::sideband(&mut packet, 2, msg.as_bytes());
        self.send(packet)
    }

    /// An error the client shows before giving up (band 3), best effort.
    pub fn fatal(&mut self, msg: &str) {
        let mut packet = Vec::new();
        if self.band == SideBand::None {
            pktline::text(&mut packet, &format!("ERR {msg}"));
        } else {
            pktline::sideband(&mut packet, 3, format!("{msg}\n").as_bytes());
        }
        let _ = self.send(packet);
    }

    /// Send buffered pack bytes.
    pub fn flush_data(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let cap = self.max_payload();
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
        let framed = match self.band {
            SideBand::None => data,
            _ => {
                let mut framed = Vec::with_capacity(data.len() + 5);
                pktline::sideband(&mut framed, 1, &data);
                framed
            }
        };
        self.send(framed)
    }
}

/// Pack bytes: buffered into full side-band packets.
impl std::io::Write for Out {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.max_payload() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.max_payload() {
            self.flush_data()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_data()
    }
}
