//! Content-defined chunking of a stream with the cut points of fastcdc's `StreamCDC` (v2020,
//! normalization level 1, default gear table), without its copies.
//!
//! `StreamCDC` keeps a buffer of `max` bytes: for every chunk it copies the chunk out into a new
//! `Vec` and shifts the rest of the buffer to the front (about three times the chunk's size in
//! `memmove` per chunk, the largest cost of an upload after SHA-1 and the gear hash). Here the
//! stream is read into one large window; chunks are slices of it; only the tail shorter than
//! `max` moves when the window is refilled. The cut function sees exactly what `StreamCDC` would
//! (the next `max` bytes, or fewer at the end of the stream), so the chunks are the same and
//! data stored before deduplicates with data stored now.
//!
//! The git blob id (SHA-1) of the stream is computed on a second thread, fed copies of what is
//! read (one `memcpy`, about a tenth of SHA-1's own cost), so neither side waits for the other.

use std::io::Read;

use fastcdc::v2020::{Normalization, cut, select_masks};

use crate::config::ChunkingConfig;
use crate::error::{Error, Result};

/// Bytes read into the window between two cuts that need more data.
const WINDOW: usize = 4 << 20;

/// Largest piece handed to the hashing thread.
const HASH_PIECE: usize = 1 << 20;

#[cfg(test)]
thread_local! {
    /// Bytes handed to the gear hash on this thread (what the zero fast path saves).
    static GEAR_HASHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether every byte of `data` is zero: compared against a static zero block (`memcmp`, many
/// times faster than the gear hash), stopping at the first block that differs.
pub(crate) fn is_zero(data: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    data.chunks(ZEROS.len()).all(|piece| piece == &ZEROS[..piece.len()])
}

/// Split `reader` into chunks, calling `on_chunk` with each in stream order; with `sha1`, hash
/// every byte of the stream into it (on a second thread, fed copies of what is read, so hashing
/// never waits for chunking or the other way round). Returns the stream's length.
pub(crate) fn chunk_stream(
    reader: &mut dyn Read,
    c: ChunkingConfig,
    sha1: Option<&mut sha1::Sha1>,
    on_chunk: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let Some(h) = sha1 else {
        return chunk_loop(reader, c, |_| Ok(()), on_chunk);
    };
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        // Hashed pieces come back to be filled again (fresh buffers cost page faults).
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let hashing = s.spawn(move || {
            for piece in rx {
                sha1::Digest::update(&mut *h, &piece);
                let _ = spare_tx.send(piece);
            }
        });
        let read = move |bytes: &[u8]| -> Result<()> {
            for piece in bytes.chunks(HASH_PIECE) {
                let mut buf = spare_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(HASH_PIECE));
                buf.clear();
                buf.extend_from_slice(piece);
                tx.send(buf)
                    .map_err(|_| Error::Corrupt("the hashing thread stopped".into()))?;
            }
            Ok(())
        };
        let out = chunk_loop(reader, c, read, on_chunk);
        // The sender lives in `read`, dropped with it by `chunk_loop`: the hasher ends.
        hashing
            .join()
            .map_err(|_| Error::Corrupt("the hashing thread panicked".into()))?;
        out
    })
}

/// The chunking loop: `on_read` sees each part of the stream as it is read, `on_chunk` each
/// chunk as it is cut.
fn chunk_loop(
    reader: &mut dyn Read,
    c: ChunkingConfig,
    mut on_read: impl FnMut(&[u8]) -> Result<()>,
    mut on_chunk: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let (min, avg, max) = (c.min as usize, c.avg as usize, c.max as usize);
    let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
    let mut window = vec![0u8; WINDOW + max];
    // Where the cut falls in `max` zero bytes. The cut is a function of the bytes it is given
    // alone (the gear hash starts afresh at every chunk), so a run of zeros (a sparse region,
    // a file extended by truncate) is cut without hashing it byte by byte, at exactly the
    // points the gear hash would choose.
    let zero_cut = {
        let zeros = vec![0u8; max];
        cut(&zeros, min, avg, max, mask_s, mask_l, mask_s << 1, mask_l << 1)
            .1
            .clamp(1, max)
    };
    let (mut start, mut len, mut eof) = (0usize, 0usize, false);
    let mut total = 0u64;
    loop {
        // Refill when the next cut could need bytes not read yet.
        if !eof && len - start < max {
            window.copy_within(start..len, 0);
            len -= start;
            start = 0;
            while !eof && len < window.len() {
                match reader.read(&mut window[len..]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        on_read(&window[len..len + n])?;
                        len += n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("reading file content")(e)),
                }
            }
        }
        if start == len {
            return Ok(total);
        }
        // Cut everything that has `max` bytes after it (or the rest, at the end).
        while start < len && (eof || len - start >= max) {
            let end = (start + max).min(len);
            if end - start == max && is_zero(&window[start..end]) {
                on_chunk(&window[start..start + zero_cut])?;
                start += zero_cut;
                total += zero_cut as u64;
                continue;
            }
            #[cfg(test)]
            GEAR_HASHED.with(|n| n.set(n.get() + (end - start) as u64));
            let (_, count) = cut(
                &window[start..end],
                min,
                avg,
                max,
                mask_s,
                mask_l,
                mask_s << 1,
                mask_l << 1,
            );
            let count = count.clamp(1, end - start);
            on_chunk(&window[start..start + count])?;
            start += count;
            total += count as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use sha1::Digest;

    use super::chunk_stream;
    use crate::config::ChunkingConfig;

    /// Deterministic bytes that do not compress (xorshift64*).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    /// A reader that returns at most `step` bytes a call, like a network body.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn same_chunks_as_stream_cdc_and_the_whole_stream_hashed() -> crate::Result<()> {
        let c = ChunkingConfig::default();
        // Empty, shorter than min, one window, several windows with a ragged end; repetitive
        // data too (cuts at max).
        let mut inputs = vec![
            Vec::new(),
            noise(1000, 1),
            noise((4 << 20) + 100, 2),
            noise((9 << 20) + 12_345, 3),
        ];
        inputs.push(vec![7u8; (5 << 20) + 3]);
        // Runs of zeros (cut without the gear hash) between and after noise, at ragged offsets.
        let mut sparse = noise(300_001, 5);
        sparse.extend(std::iter::repeat_n(0u8, (3 << 20) + 17));
        sparse.extend(noise(70_000, 6));
        sparse.extend(std::iter::repeat_n(0u8, (5 << 20) + 1));
        inputs.push(sparse);
        inputs.push(vec![0u8; (6 << 20) + 5]);
        for data in inputs {
            let want: Vec<Vec<u8>> =
                fastcdc::v2020::StreamCDC::new(&data[..], c.min as usize, c.avg as usize, c.max as usize)
                    .map(|r| r.map(|c| c.data))
                    .collect::<Result<_, _>>()
                    .map_err(|e| crate::Error::Corrupt(e.to_string()))?;
            for step in [usize::MAX, 16_384, 77_777] {
                let mut got = Vec::new();
                let mut h = sha1::Sha1::new();
                let n = chunk_stream(&mut Dribble(&data, step), c, Some(&mut h), |chunk| {
                    got.push(chunk.to_vec());
                    Ok(())
                })?;
                assert_eq!(n, data.len() as u64);
                assert_eq!(
                    got.len(),
                    want.len(),
                    "chunk count for {} bytes, step {step}",
                    data.len()
                );
                assert!(got == want, "chunks differ for {} bytes, step {step}", data.len());
                assert_eq!(h.finalize()[..], sha1::Sha1::digest(&data)[..]);
            }
        }
        Ok(())
    }

    #[test]
    fn zeros_are_cut_without_the_gear_hash() -> crate::Result<()> {
        let c = ChunkingConfig::default();
        let data = vec![0u8; 64 << 20];
        let before = super::GEAR_HASHED.with(|n| n.get());
        let mut chunks = 0;
        let n = chunk_stream(&mut &data[..], c, None, |_| {
            chunks += 1;
            Ok(())
        })?;
        let hashed = super::GEAR_HASHED.with(|n| n.get()) - before;
        assert_eq!(n, data.len() as u64);
        assert!(chunks >= 256, "{chunks} chunks");
        // Only the ragged end (shorter than `max`) goes through the gear hash.
        assert!(hashed < c.max as u64, "{hashed} bytes gear-hashed");
        Ok(())
    }

    #[test]
    fn an_error_from_the_chunk_sink_stops_the_stream() {
        let data = noise(3 << 20, 4);
        let mut seen = 0;
        let r = chunk_stream(&mut &data[..], ChunkingConfig::default(), None, |_| {
            seen += 1;
            if seen == 3 {
                return Err(crate::Error::InvalidArgument("full".into()));
            }
            Ok(())
        });
        assert!(matches!(r, Err(crate::Error::InvalidArgument(_))));
        assert_eq!(seen, 3);
    }

    /// Yields `data`, then fails.
    struct FailsAfter<'a>(&'a [u8]);

    impl Read for FailsAfter<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = out.len().min(self.0.len()).min(100_000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// With the hashing thread running, a failing reader or a failing sink ends the call with
    /// the error: the hashing thread is stopped and joined, nothing waits forever. (Run on a
    /// thread of its own so a hang fails the test instead of stalling the suite.)
    #[test]
    fn errors_with_the_hashing_thread_running_end_the_call() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // More than the hashing channel holds (16 pieces of 1 MiB) before the failure.
            let data = noise(40 << 20, 5);
            let mut h = sha1::Sha1::new();
            let read_err = chunk_stream(&mut FailsAfter(&data), ChunkingConfig::default(), Some(&mut h), |_| {
                Ok(())
            });
            let mut h = sha1::Sha1::new();
            let mut seen = 0;
            let sink_err = chunk_stream(&mut &data[..], ChunkingConfig::default(), Some(&mut h), |_| {
                seen += 1;
                if seen == 200 {
                    return Err(crate::Error::InvalidArgument("full".into()));
                }
                Ok(())
            });
            let _ = tx.send((read_err.map_err(|e| e.kind()), sink_err.map_err(|e| e.kind())));
        });
        let (read_err, sink_err) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("chunk_stream did not return after an error");
        assert!(read_err.is_err(), "a reader error must fail the call");
        assert_eq!(sink_err, Err(crate::ErrorKind::InvalidArgument));
    }
}
