//! pkt-line framing (gitprotocol-common): reading a request body into packets, and encoding
//! data, flush, delim and side-band packets. Never trusts a length: malformed input is a
//! [`ServeError::Protocol`] telling what was wrong and where.

use super::ServeError;

/// Largest pkt-line (4 bytes of length included).
pub const MAX_PKT_LEN: usize = 65520;
/// Largest side-band payload: a pkt-line minus its length and the band byte.
pub const MAX_SIDEBAND_DATA: usize = MAX_PKT_LEN - 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Flush,
    Delim,
    ResponseEnd,
    /// A data packet, with one trailing `\n` removed.
    Data(&'a [u8]),
}

/// Reads packets from a complete request body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next packet, `None` at the end of the body.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'a>>, ServeError> {
        if self.at_end() {
            return Ok(None);
        }
        let at = self.pos;
        let head = self
            .buf
            .get(at..at + 4)
            .ok_or_else(|| ServeError::Protocol(format!("truncated pkt-line length at byte {at}")))?;
        let len = std::str::from_utf8(head)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                ServeError::Protocol(format!(
                    "bad pkt-line length '{}' at byte {at}",
                    String::from_utf8_lossy(head).escape_debug()
                ))
            })?;
        let packet = match len {
            0 => Packet::Flush,
            1 => Packet::Delim,
            2 => Packet::ResponseEnd,
            3 => return Err(ServeError::Protocol(format!("invalid pkt-line length 3 at byte {at}"))),
            n if n > MAX_PKT_LEN => {
                return Err(ServeError::Protocol(format!(
                    "pkt-line of {n} bytes at byte {at} exceeds {MAX_PKT_LEN}"
                )));
            }
            n => {
                let data = self.buf.get(at + 4..at + n).ok_or_else(|| {
                    ServeError::Protocol(format!("truncated pkt-line at byte {at}: {n} bytes announced"))
                })?;
                self.pos = at + n;
                return Ok(Some(Packet::Data(data.strip_suffix(b"\n").unwrap_or(data))));
            }
        };
        self.pos = at + 4;
        Ok(Some(packet))
    }

    /// The next packet as text (for command and argument lines).
    pub fn next_line(&mut self) -> Result<Option<Line<'a>>, ServeError> {
        Ok(match self.next_packet()? {
            None => None,
            Some(Packet::Data(d)) => Some(Line::Text(std::str::from_utf8(d).map_err(|_| {
                ServeError::Protocol(format!("pkt-line is not UTF-8: '{}'", String::from_utf8_lossy(d)))
            })?)),
            Some(Packet::Flush) => Some(Line::Flush),
            Some(Packet::Delim) => Some(Line::Delim),
            Some(Packet::ResponseEnd) => Some(Line::ResponseEnd),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    Flush,
    Delim,
    ResponseEnd,
    Text(&'a str),
}

/// Append a data packet holding `data`.
pub fn data(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!(data.len() + 4 <= MAX_PKT_LEN);
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
}

/// Append a text packet: `line` followed by `\n`.
pub fn text(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(format!("{:04x}", line.len() + 5).as_bytes());
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

pub fn flush(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0000");
}

pub fn delim(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0001");
}

/// Append side-band packets on `band` carrying `payload`, split as needed.
pub fn sideband(out: &mut Vec<u8>, band: u8, payload: &[u8]) {
    for piece in payload.chunks(MAX_SIDEBAND_DATA) {
        out.extend_from_slice(format!("{:04x}", piece.len() + 5).as_bytes());
        out.push(band);
        out.extend_from_slice(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_data_flush_and_delim() {
        let body = b"0014command=ls-refs\n00010008peel0000";
        let mut r = Reader::new(body);
        assert_eq!(r.next_line().unwrap(), Some(Line::Text("command=ls-refs")));
        assert_eq!(r.next_line().unwrap(), Some(Line::Delim));
        assert_eq!(r.next_line().unwrap(), Some(Line::Text("peel")));
        assert_eq!(r.next_line().unwrap(), Some(Line::Flush));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn rejects_malformed_lengths() {
        for bad in [&b"00zzabc"[..], b"0003", b"00ff short", b"00", b"fff0"] {
            let err = Reader::new(bad).next_packet().unwrap_err();
            assert!(matches!(err, ServeError::Protocol(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn encodes_and_splits_sideband() {
        let mut out = Vec::new();
        text(&mut out, "version 2");
        assert_eq!(out, b"000eversion 2\n");
        let mut out = Vec::new();
        sideband(&mut out, 1, &vec![7u8; MAX_SIDEBAND_DATA + 1]);
        let mut r = Reader::new(&out);
        let Some(Packet::Data(first)) = r.next_packet().unwrap() else {
            panic!("expected data")
        };
        assert_eq!(first.len(), MAX_SIDEBAND_DATA + 1);
        assert_eq!(r.next_packet().unwrap(), Some(Packet::Data(&[1u8, 7][..])));
    }
}
