//! Sparse files as GNU tar stores them: a map of the data segments (offset and length in the
//! real file) and only those segments' bytes in the archive; the holes read as zeros.
//!
//! The map comes from the old GNU header (`S` entries, continued in extension blocks), from pax
//! records (format 0.0: repeated `GNU.sparse.offset`/`GNU.sparse.numbytes`; 0.1:
//! `GNU.sparse.map`), or from the start of the entry's data (1.0: decimal numbers, one per
//! line, padded to a block). Parsing lives here; the reader feeds the bytes.

use super::pax::Records;

/// The most segments one map may have (a map of GNU tar's own files has one per hole).
pub const MAX_SEGMENTS: usize = 1 << 20;

/// A validated sparse map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// (offset, length) in the real file, in order, not overlapping.
    pub segments: Vec<(u64, u64)>,
    /// The size of the real file.
    pub real_size: u64,
}

impl Map {
    /// Check that the segments are in order, do not overlap, lie within the file, and hold
    /// exactly `stored` bytes (what the archive carries for them).
    pub fn new(segments: Vec<(u64, u64)>, real_size: u64, stored: u64) -> Result<Map, String> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(offset, len) in &segments {
            if offset < end {
                return Err("the sparse map's segments overlap or are out of order".into());
            }
            end = offset
                .checked_add(len)
                .filter(|&e| e <= real_size)
                .ok_or("a sparse segment lies beyond the file's size")?;
            total = total.checked_add(len).ok_or("the sparse map overflows")?;
        }
        if total != stored {
            return Err(format!(
                "the sparse map describes {total} bytes of data but the archive holds {stored}"
            ));
        }
        Ok(Map { segments, real_size })
    }
}

/// Which pax sparse format an entry's records describe, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaxSparse {
    /// 0.0 or 0.1: the map is in the records.
    InRecords,
    /// 1.0: the map is at the start of the data.
    InData,
}

pub fn pax_format(records: &Records) -> Result<Option<PaxSparse>, String> {
    let major = records.number("GNU.sparse.major")?;
    let minor = records.number("GNU.sparse.minor")?;
    match (major, minor) {
        (Some(1), Some(0)) => Ok(Some(PaxSparse::InData)),
        (Some(ma), mi) => Err(format!(
            "GNU sparse format {ma}.{} is not supported",
            mi.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
        )),
        (None, Some(_)) => Err("GNU.sparse.minor without GNU.sparse.major".into()),
        (None, None) => {
            let has_map = records.get("GNU.sparse.map").is_some()
                || records.get("GNU.sparse.offset").is_some()
                || records.get("GNU.sparse.numblocks").is_some();
            Ok(has_map.then_some(PaxSparse::InRecords))
        }
    }
}

/// The map of a 0.0 or 0.1 entry, whose archive data (`stored` bytes) is the segments' bytes.
pub fn from_records(records: &Records, stored: u64) -> Result<Map, String> {
    let real_size = records
        .number("GNU.sparse.size")?
        .or(records.number("GNU.sparse.realsize")?)
        .ok_or("a sparse entry has no GNU.sparse.size")?;
    let segments = if let Some(map) = records.get("GNU.sparse.map") {
        let text = std::str::from_utf8(map).map_err(|_| "GNU.sparse.map is not text")?;
        let numbers = if text.is_empty() {
            Vec::new()
        } else {
            text.split(',')
                .map(|n| {
                    n.parse::<u64>()
                        .map_err(|_| "GNU.sparse.map holds a non-number".to_owned())
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if numbers.len() % 2 != 0 {
            return Err("GNU.sparse.map has an odd count of numbers".into());
        }
        numbers.chunks(2).map(|p| (p[0], p[1])).collect()
    } else {
        // Format 0.0: offset and numbytes records alternate, in order.
        let mut segments = Vec::new();
        let mut offset = None;
        for (key, value) in &records.0 {
            let parse = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| format!("pax record {key} is not a number"))
            };
            match key.as_str() {
                "GNU.sparse.offset" if offset.is_none() => offset = Some(parse()?),
                "GNU.sparse.numbytes" => {
                    let start = offset.take().ok_or("GNU.sparse.numbytes without an offset")?;
                    segments.push((start, parse()?));
                }
                "GNU.sparse.offset" => return Err("two GNU.sparse.offset records in a row".into()),
                _ => {}
            }
        }
        if offset.is_some() {
            return Err("GNU.sparse.offset without numbytes".into());
        }
        segments
    };
    if let Some(n) = records.number("GNU.sparse.numblocks")?
        && n != segments.len() as u64
    {
        return Err(format!(
            "GNU.sparse.numblocks says {n} segments but the map has {}",
            segments.len()
        ));
    }
    if segments.len() > MAX_SEGMENTS {
        return Err(format!("the sparse map has more than {MAX_SEGMENTS} segments"));
    }
    Map::new(segments, real_size, stored)
}

/// Parses the decimal lines of a 1.0 map as they arrive.
#[derive(Debug, Default)]
pub struct DataMapParser {
    count: Option<u64>,
    numbers: Vec<u64>,
    current: Option<u64>,
    /// Bytes consumed so far.
    pub consumed: u64,
}

impl DataMapParser {
    /// Feed bytes; returns how many were used and whether the map is complete (then the rest of
    /// the block is padding).
    pub fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), String> {
        for (i, &b) in data.iter().enumerate() {
            self.consumed += 1;
            match b {
                b'0'..=b'9' => {
                    let v = self.current.unwrap_or(0);
                    self.current = Some(
                        v.checked_mul(10)
                            .and_then(|v| v.checked_add(u64::from(b - b'0')))
                            .ok_or("a number in the sparse map overflows")?,
                    );
                }
                b'\n' => {
                    let n = self.current.take().ok_or("an empty line in the sparse map")?;
                    match self.count {
                        None if n as usize > MAX_SEGMENTS => {
                            return Err(format!("the sparse map has more than {MAX_SEGMENTS} segments"));
                        }
                        None => self.count = Some(n),
                        Some(_) => self.numbers.push(n),
                    }
                    if self.count.is_some_and(|c| self.numbers.len() as u64 == 2 * c) {
                        return Ok((i + 1, true));
                    }
                }
                _ => return Err("the sparse map holds a byte that is not a digit".into()),
            }
        }
        Ok((data.len(), false))
    }

    pub fn finish(self, real_size: u64, stored: u64) -> Result<Map, String> {
        let segments = self.numbers.chunks(2).map(|p| (p[0], p[1])).collect();
        Map::new(segments, real_size, stored)
    }
}

/// Expands a map over the archive's segment bytes: where the reader is in the real file.
#[derive(Debug)]
pub struct Expander {
    map: Map,
    /// Position in the real file.
    pos: u64,
    /// Index of the first segment not wholly before `pos`.
    next: usize,
}

/// What the next read of an expanded file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// This many zeros (a hole).
    Zeros(u64),
    /// This many bytes from the archive.
    Data(u64),
    End,
}

impl Expander {
    pub fn new(map: Map) -> Self {
        Expander { map, pos: 0, next: 0 }
    }

    pub fn step(&mut self) -> Step {
        while let Some(&(offset, len)) = self.map.segments.get(self.next) {
            if len == 0 {
                // GNU tar ends its maps with an empty segment at the file's end.
                self.next += 1;
                continue;
            }
            if self.pos < offset {
                return Step::Zeros(offset - self.pos);
            }
            if self.pos < offset + len {
                return Step::Data(offset + len - self.pos);
            }
            self.next += 1;
        }
        match self.map.real_size - self.pos {
            0 => Step::End,
            n => Step::Zeros(n),
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_validated() {
        assert!(Map::new(vec![(0, 10), (20, 5)], 30, 15).is_ok());
        assert!(Map::new(vec![(20, 5), (0, 10)], 30, 15).is_err());
        assert!(Map::new(vec![(0, 10), (5, 5)], 30, 15).is_err());
        assert!(Map::new(vec![(25, 10)], 30, 10).is_err());
        assert!(Map::new(vec![(0, 10)], 30, 11).is_err());
    }

    #[test]
    fn data_maps_parse_across_pieces() {
        let mut p = DataMapParser::default();
        assert_eq!(p.feed(b"2\n10").unwrap(), (4, false));
        assert_eq!(p.feed(b"0\n5\n300\n7\nrest").unwrap(), (10, true));
        let map = p.finish(400, 12).unwrap();
        assert_eq!(map.segments, [(100, 5), (300, 7)]);
        assert!(DataMapParser::default().feed(b"1\nx").is_err());
    }

    #[test]
    fn expansion_alternates_holes_and_data() {
        let mut e = Expander::new(Map::new(vec![(4, 2), (10, 0)], 12, 2).unwrap());
        let mut steps = Vec::new();
        loop {
            let s = e.step();
            let n = match s {
                Step::Zeros(n) | Step::Data(n) => n,
                Step::End => break,
            };
            steps.push(s);
            e.advance(n);
        }
        assert_eq!(steps, [Step::Zeros(4), Step::Data(2), Step::Zeros(6)]);
    }
}
