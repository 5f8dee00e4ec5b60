//! A tar reader that keeps names and link names as the archive's raw bytes (ustar name and
//! prefix, GNU long names `L`/`K`, PAX `path`/`linkpath`/`size` records), so what an export
//! wrote is what the suite compares: no library normalises a path on the way.

use crate::report::Differences;
use crate::snapshot::{Entry, Snapshot, show};

#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
}

fn field(h: &[u8], start: usize, len: usize) -> &[u8] {
    let f = &h[start..start + len];
    let end = f.iter().position(|b| *b == 0).unwrap_or(len);
    &f[..end]
}

/// An octal number field, or GNU base-256 (high bit of the first byte set).
fn number(h: &[u8], start: usize, len: usize) -> Result<u64, String> {
    let f = &h[start..start + len];
    if f[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(f[0] & 0x7f);
        for b in &f[1..] {
            n = n.checked_mul(256).ok_or("base-256 number overflows")? + u64::from(*b);
        }
        return Ok(n);
    }
    let s: String = field(h, start, len)
        .iter()
        .map(|b| *b as char)
        .filter(|c| !c.is_whitespace())
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(&s, 8).map_err(|e| format!("bad octal field {s:?}: {e}"))
}

fn checksum_ok(h: &[u8]) -> bool {
    let Ok(want) = number(h, 148, 8) else { return false };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u64::from(*b) })
        .sum();
    sum == want
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// A PAX record: key and value, raw.
type PaxRecord = (Vec<u8>, Vec<u8>);

/// PAX records `LEN key=value\n`.
fn pax_records(data: &[u8]) -> Result<Vec<PaxRecord>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record with a bad length")?;
        if len > rest.len() || len <= sp + 1 {
            return Err("PAX record longer than its header".into());
        }
        let rec = &rest[sp + 1..len - 1]; // without the trailing newline
        let eq = rec.iter().position(|b| *b == b'=').ok_or("PAX record without '='")?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Every entry of a tar archive (GNU long-name and PAX header entries applied to the entry they
/// describe, not returned themselves).
pub fn parse(archive: &[u8]) -> Result<Vec<TarEntry>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Vec<PaxRecord> = Vec::new();
    loop {
        if pos + 512 > archive.len() {
            return Err(format!("archive ends at byte {} without its end marker", archive.len()));
        }
        let h = &archive[pos..pos + 512];
        if h.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        if !checksum_ok(h) {
            return Err(format!("bad header checksum at byte {pos}"));
        }
        let typeflag = h[156];
        let mut size = number(h, 124, 12)?;
        if let Some((_, v)) = pax.iter().rev().find(|(k, _)| k == b"size") {
            size = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad PAX size")?;
        }
        let data_start = pos + 512;
        let data_end = data_start
            .checked_add(usize::try_from(size).map_err(|_| "entry too large")?)
            .ok_or("entry too large")?;
        if data_end > archive.len() {
            return Err(format!("entry at byte {pos} runs past the end of the archive"));
        }
        let data = archive[data_start..data_end].to_vec();
        pos = data_start + (size as usize).div_ceil(512) * 512;
        match typeflag {
            b'L' => {
                long_name = Some(trim_nul(data));
                continue;
            }
            b'K' => {
                long_link = Some(trim_nul(data));
                continue;
            }
            b'x' => {
                pax = pax_records(&data)?;
                continue;
            }
            b'g' => continue,
            _ => {}
        }
        let ustar = &h[257..263] == b"ustar\0";
        let mut name = field(h, 0, 100).to_vec();
        if ustar {
            let prefix = field(h, 345, 155);
            if !prefix.is_empty() {
                let mut p = prefix.to_vec();
                p.push(b'/');
                p.extend_from_slice(&name);
                name = p;
            }
        }
        let mut link = field(h, 157, 100).to_vec();
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some(l) = long_link.take() {
            link = l;
        }
        for (k, v) in pax.drain(..) {
            match k.as_slice() {
                b"path" => name = v,
                b"linkpath" => link = v,
                _ => {}
            }
        }
        out.push(TarEntry {
            name,
            typeflag,
            mode: number(h, 100, 8)? as u32,
            link,
            data,
        });
    }
}

/// The snapshot an archive describes. The root (`.`, `./`) is skipped; a leading `./` and a
/// directory's trailing `/` are dropped. Anything else unusual (a duplicate, a hard link, a
/// sparse or device entry, a file with link bytes) is recorded in `diffs` under `surface`.
pub fn snapshot(entries: &[TarEntry], diffs: &Differences, surface: &str) -> Snapshot {
    let mut out = Snapshot::default();
    for e in entries {
        let mut name: &[u8] = &e.name;
        if let Some(rest) = name.strip_prefix(b"./") {
            name = rest;
        }
        if e.typeflag == b'5' {
            name = name.strip_suffix(b"/").unwrap_or(name);
        }
        if name.is_empty() || name == b"." {
            continue;
        }
        let entry = match e.typeflag {
            b'0' | 0 | b'7' => Entry::file(e.mode, &e.data),
            b'5' => Entry::dir(e.mode),
            b'2' => Entry::symlink(&e.link),
            t => {
                diffs.add(
                    surface,
                    show(name),
                    format!("tar entry of type {:?}: not a file, directory or symlink", t as char),
                );
                continue;
            }
        };
        if out.insert(name.to_vec(), entry).is_some() {
            diffs.add(surface, show(name), "appears twice in the archive");
        }
    }
    out
}
