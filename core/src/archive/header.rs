//! One 512-byte header block: field positions, numbers (octal or base-256), the checksum, and
//! the three layouts (v7, POSIX ustar, GNU) that differ in where a name's prefix and the sparse
//! map live. Fields are bytes; nothing here interprets a name.

use std::ops::Range;

pub const BLOCK: usize = 512;
pub type Block = [u8; BLOCK];

pub const NAME: Range<usize> = 0..100;
pub const MODE: Range<usize> = 100..108;
pub const UID: Range<usize> = 108..116;
pub const GID: Range<usize> = 116..124;
pub const SIZE: Range<usize> = 124..136;
pub const MTIME: Range<usize> = 136..148;
pub const CHECKSUM: Range<usize> = 148..156;
pub const TYPEFLAG: usize = 156;
pub const LINKNAME: Range<usize> = 157..257;
pub const MAGIC: Range<usize> = 257..263;
pub const VERSION: Range<usize> = 263..265;
/// POSIX ustar only: the part of a long name before its last `/`.
pub const PREFIX: Range<usize> = 345..500;
/// GNU only: four (offset, length) pairs of 12 bytes each, a continuation flag, the real size.
pub const GNU_SPARSE: Range<usize> = 386..482;
pub const GNU_IS_EXTENDED: usize = 482;
pub const GNU_REAL_SIZE: Range<usize> = 483..495;

/// The layout of a header, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V7,
    Ustar,
    Gnu,
}

pub fn layout(block: &Block) -> Layout {
    match (&block[MAGIC], &block[VERSION]) {
        (b"ustar\0", _) => Layout::Ustar,
        (b"ustar ", b" \0") => Layout::Gnu,
        _ => Layout::V7,
    }
}

/// The bytes of a text field up to its first NUL.
pub fn text(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// A numeric field: octal digits (leading spaces, ended by a space or NUL) or, when the first
/// byte has its high bit set, a big-endian base-256 number (GNU's encoding of large values).
/// `None` when malformed, negative or too large for `u64`.
pub fn number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first()
        && first & 0x80 != 0
    {
        if first == 0xff {
            return None; // negative
        }
        let mut value = u64::from(first & 0x7f);
        for &b in rest {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != b' ' && b != 0);
    let mut value: u64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// Whether the stored checksum matches the block: the sum of its bytes with the checksum field
/// counted as spaces, unsigned (POSIX) or signed (some historic writers).
pub fn checksum_ok(block: &Block) -> bool {
    let Some(stored) = number(&block[CHECKSUM]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if CHECKSUM.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// Write `value` into a numeric field: octal with a NUL terminator when it fits, base-256
/// otherwise (as GNU tar does for sizes of 8 GiB and more).
pub fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if value < 1u64.checked_shl(3 * digits as u32).unwrap_or(u64::MAX) {
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let n = bytes.len().min(field.len() - 1);
        let len = field.len();
        field[len - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    }
}

/// Compute and store the checksum of a block whose other fields are final.
pub fn put_checksum(block: &mut Block) {
    block[CHECKSUM].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[CHECKSUM].copy_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_octal_and_base_256() {
        assert_eq!(number(b"0000644\0"), Some(0o644));
        assert_eq!(number(b"   644 \0"), Some(0o644));
        assert_eq!(number(b"\0\0\0\0"), Some(0));
        assert_eq!(number(b"0009\0"), None);
        let mut f = [0u8; 12];
        put_number(&mut f, 10 << 30);
        assert_eq!(f[0], 0x80);
        assert_eq!(number(&f), Some(10 << 30));
        put_number(&mut f, 0o777);
        assert_eq!(&f, b"00000000777\0");
        assert_eq!(number(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn checksums_round_trip() {
        let mut b = [0u8; BLOCK];
        b[NAME][..3].copy_from_slice(b"abc");
        put_checksum(&mut b);
        assert!(checksum_ok(&b));
        b[0] = b'x';
        assert!(!checksum_ok(&b));
    }
}
