//! Git's delta encoding (gitformat-pack, "Deltified representation"): a target object described
//! as copies from a base object and inserted literal bytes. Used for thin packs, where a changed
//! file or tree is sent as a delta against its previous version, which the client already has.
//!
//! The base is indexed by a hash of every aligned 16-byte block; the target is scanned byte by
//! byte, and a block found in the base is extended forwards and backwards into a copy. This
//! finds what a small edit leaves unchanged, which is what fetches after commits need; it does
//! not search as hard as git's own `diff-delta` for heavily rearranged content.

use std::collections::HashMap;

/// Bytes per indexed block of the base; matches shorter than this are not found.
const BLOCK: usize = 16;
/// Largest copy in one instruction (the historical limit every git reader accepts).
const MAX_COPY: usize = 0x10000;
/// Largest insert in one instruction.
const MAX_INSERT: usize = 0x7f;

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn block_hash(b: &[u8]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..BLOCK]);
    let (lo, hi) = (u64::from_le_bytes(lo), u64::from_le_bytes(hi));
    (lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(29).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)).rotate_left(17)
}

fn insert(out: &mut Vec<u8>, mut data: &[u8]) {
    while !data.is_empty() {
        let n = data.len().min(MAX_INSERT);
        out.push(n as u8);
        out.extend_from_slice(&data[..n]);
        data = &data[n..];
    }
}

fn copy(out: &mut Vec<u8>, mut offset: usize, mut len: usize) {
    while len > 0 {
        let n = len.min(MAX_COPY);
        let mut cmd = 0x80u8;
        let mut args = Vec::with_capacity(7);
        for k in 0..4 {
            let b = (offset >> (8 * k)) as u8;
            if b != 0 {
                cmd |= 1 << k;
                args.push(b);
            }
        }
        for k in 0..3 {
            let b = (n >> (8 * k)) as u8;
            if b != 0 {
                cmd |= 0x10 << k;
                args.push(b);
            }
        }
        out.push(cmd);
        out.extend_from_slice(&args);
        offset += n;
        len -= n;
    }
}

/// The delta that turns `base` into `target`. Copy offsets are 32-bit: `base` must be
/// smaller than 4 GiB (callers only delta objects of the object database).
pub fn encode(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() / 8 + 16);
    varint(&mut out, base.len() as u64);
    varint(&mut out, target.len() as u64);
    if base.len() < BLOCK || target.len() < BLOCK {
        insert(&mut out, target);
        return out;
    }
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(base.len() / BLOCK + 1);
    for at in (0..=base.len() - BLOCK).step_by(BLOCK) {
        index.entry(block_hash(&base[at..at + BLOCK])).or_insert(at);
    }
    let mut pending = 0;
    let mut i = 0;
    while i + BLOCK <= target.len() {
        let found = index
            .get(&block_hash(&target[i..i + BLOCK]))
            .copied()
            .filter(|&at| base[at..at + BLOCK] == target[i..i + BLOCK]);
        let Some(at) = found else {
            i += 1;
            continue;
        };
        let mut len = BLOCK;
        while at + len < base.len() && i + len < target.len() && base[at + len] == target[i + len] {
            len += 1;
        }
        let mut back = 0;
        while back < i - pending && back < at && base[at - back - 1] == target[i - back - 1] {
            back += 1;
        }
        insert(&mut out, &target[pending..i - back]);
        copy(&mut out, at - back, len + back);
        i += len;
        pending = i;
    }
    insert(&mut out, &target[pending..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apply a delta the way git's `patch_delta` does.
    fn apply(base: &[u8], delta: &[u8]) -> Vec<u8> {
        let mut pos = 0;
        let mut read_varint = || {
            let (mut n, mut shift) = (0u64, 0);
            loop {
                let b = delta[pos];
                pos += 1;
                n |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return n;
                }
            }
        };
        assert_eq!(read_varint() as usize, base.len());
        let size = read_varint() as usize;
        let mut out = Vec::new();
        while pos < delta.len() {
            let cmd = delta[pos];
            pos += 1;
            if cmd & 0x80 != 0 {
                let (mut off, mut n) = (0usize, 0usize);
                for k in 0..4 {
                    if cmd & (1 << k) != 0 {
                        off |= usize::from(delta[pos]) << (8 * k);
                        pos += 1;
                    }
                }
                for k in 0..3 {
                    if cmd & (0x10 << k) != 0 {
                        n |= usize::from(delta[pos]) << (8 * k);
                        pos += 1;
                    }
                }
                if n == 0 {
                    n = 0x10000;
                }
                out.extend_from_slice(&base[off..off + n]);
            } else {
                assert!(cmd != 0, "reserved instruction 0");
                let n = usize::from(cmd);
                out.extend_from_slice(&delta[pos..pos + n]);
                pos += n;
            }
        }
        assert_eq!(out.len(), size);
        out
    }

    fn text(lines: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::new();
        for i in 0..lines {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(format!("line {i}: value {x:x}\n").as_bytes());
        }
        out
    }

    #[test]
    fn a_small_edit_gives_a_small_delta_that_applies() {
        let base = text(5000, 7);
        let mut target = base.clone();
        let mid = target.len() / 2;
        target.splice(mid..mid, b"/* inserted */\n".iter().copied());
        target.extend_from_slice(b"appended\n");
        target.drain(100..140);
        let delta = encode(&base, &target);
        assert_eq!(apply(&base, &delta), target);
        assert!(delta.len() < 200, "delta of {} bytes for a small edit", delta.len());
    }

    #[test]
    fn edge_cases_round_trip() {
        let big = text(20_000, 3); // over 0x10000 bytes: copies are split
        assert!(big.len() > 2 * MAX_COPY);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (Vec::new(), Vec::new()),
            (Vec::new(), b"only new".to_vec()),
            (b"short".to_vec(), b"short too".to_vec()),
            (text(10, 1), Vec::new()),
            (text(100, 1), text(100, 2)),
            (big.clone(), big.clone()),
            (big.clone(), [&big[1000..], &big[..1000]].concat()),
            (vec![0u8; 100_000], vec![0u8; 70_000]),
            (text(300, 5), [text(300, 5), vec![0xff; 300]].concat()),
        ];
        for (base, target) in cases {
            assert_eq!(apply(&base, &encode(&base, &target)), target);
        }
        let delta = encode(&big, &big);
        assert!(
            delta.len() < 40,
            "an identical object is a few copies, got {}",
            delta.len()
        );
    }
}
