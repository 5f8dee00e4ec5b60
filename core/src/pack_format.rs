//! The pack format's entry encodings (gitformat-pack), shared by the pack the server sends
//! (gitbridge's serving) and the packs it stores (`pack_write`).

use gix::objs::Kind;

/// Pack type numbers.
pub fn type_number(kind: Kind) -> u8 {
    match kind {
        Kind::Commit => 1,
        Kind::Tree => 2,
        Kind::Blob => 3,
        Kind::Tag => 4,
    }
}

pub const OFS_DELTA: u8 = 6;
pub const REF_DELTA: u8 = 7;

/// The entry header of an object of `kind`: type and size as git's variable-length integer.
pub fn entry_header(kind: Kind, size: u64) -> Vec<u8> {
    header_bytes(type_number(kind), size)
}

/// The entry header of type number `type_number` (an object's, or a delta's) and `size`.
pub fn header_bytes(type_number: u8, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut byte = (type_number << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

/// The OFS_DELTA base distance encoding (big-endian 7-bit groups, each continuation adding one).
pub fn ofs_distance(mut d: u64) -> Vec<u8> {
    let mut out = vec![(d & 0x7f) as u8];
    d >>= 7;
    while d > 0 {
        d -= 1;
        out.push(0x80 | (d & 0x7f) as u8);
        d >>= 7;
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_headers_follow_the_pack_format() {
        assert_eq!(entry_header(Kind::Commit, 5), vec![0x15]);
        assert_eq!(entry_header(Kind::Blob, 16), vec![0xb0, 0x01]);
        // 2 GiB: 4 bits, then 7-bit groups.
        let h = entry_header(Kind::Blob, 1 << 31);
        assert_eq!(h[0] & 0x70, 0x30);
        let mut size = u64::from(h[0] & 0x0f);
        let mut shift = 4;
        for b in &h[1..] {
            size |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        assert_eq!(size, 1 << 31);
        assert!(h[..h.len() - 1].iter().all(|b| b & 0x80 != 0));
    }

    #[test]
    fn ofs_delta_distances_use_gits_offset_encoding() {
        assert_eq!(ofs_distance(5), vec![5]);
        assert_eq!(ofs_distance(127), vec![127]);
        // 128 = ((0 + 1) << 7) + 0: one continuation byte 0x80, then 0x00.
        assert_eq!(ofs_distance(128), vec![0x80, 0x00]);
        let decode = |b: &[u8]| {
            let mut v = u64::from(b[0] & 0x7f);
            for x in &b[1..] {
                v = ((v + 1) << 7) | u64::from(x & 0x7f);
            }
            v
        };
        for d in [1u64, 127, 128, 300, 16_511, 16_512, 1 << 30, (1 << 40) + 12_345] {
            let bytes = ofs_distance(d);
            assert_eq!(decode(&bytes), d);
            assert!(bytes[..bytes.len() - 1].iter().all(|b| b & 0x80 != 0));
            assert_eq!(bytes.last().unwrap() & 0x80, 0);
        }
    }
}
