//! Tar archives as raw bytes for tests, built and parsed here independently of the engine's
//! own tar code, so a test checks the bytes themselves: a header's name and link fields, pax
//! `path`/`linkpath` records, modes.

/// One entry to write: `typeflag` as in tar ('0' file, '2' symlink, '5' directory, ...).
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub link: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Raw<'a> {
    pub fn file(name: &'a str, mode: u32, data: &'a [u8]) -> Self {
        Raw {
            name: name.as_bytes(),
            typeflag: b'0',
            mode,
            link: b"",
            data,
        }
    }
    pub fn dir(name: &'a str, mode: u32) -> Self {
        Raw {
            name: name.as_bytes(),
            typeflag: b'5',
            mode,
            link: b"",
            data: b"",
        }
    }
    pub fn symlink(name: &'a str, target: &'a [u8]) -> Self {
        Raw {
            name: name.as_bytes(),
            typeflag: b'2',
            mode: 0o777,
            link: target,
            data: b"",
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0w$o}\0", w = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

fn header(name: &[u8], typeflag: u8, mode: u32, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    [format!("{len} {key}=").as_bytes(), value, b"\n"].concat()
}

/// A ustar archive of `entries`, with pax records for names and targets over 100 bytes, and
/// the two end-of-archive blocks.
pub fn build(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut pax = Vec::new();
        if e.name.len() > 100 {
            pax.extend(record("path", e.name));
        }
        if e.link.len() > 100 {
            pax.extend(record("linkpath", e.link));
        }
        if !pax.is_empty() {
            out.extend(header(b"PaxHeader", b'x', 0o644, pax.len() as u64, b""));
            out.extend(&pax);
            pad(&mut out);
        }
        out.extend(header(e.name, e.typeflag, e.mode, e.data.len() as u64, e.link));
        out.extend(e.data);
        pad(&mut out);
    }
    out.extend([0u8; 1024]);
    out
}

/// An entry as parsed from raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub data: Vec<u8>,
    /// Whether a pax header came before it.
    pub pax: bool,
}

fn field(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

fn number(b: &[u8]) -> u64 {
    let s = std::str::from_utf8(field(b)).unwrap().trim();
    u64::from_str_radix(s, 8).unwrap()
}

/// The entries of a plain (uncompressed) archive, pax `path`/`linkpath` applied.
pub fn parse(bytes: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut pax: Option<Vec<(String, Vec<u8>)>> = None;
    while at + 512 <= bytes.len() {
        let h = &bytes[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let size = number(&h[124..136]) as usize;
        let data = bytes[at + 512..at + 512 + size].to_vec();
        at += 512 + size.div_ceil(512) * 512;
        if h[156] == b'x' {
            let mut records = Vec::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let sp = rest.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
                let rec = &rest[sp + 1..len - 1];
                let eq = rec.iter().position(|&b| b == b'=').unwrap();
                records.push((String::from_utf8(rec[..eq].to_vec()).unwrap(), rec[eq + 1..].to_vec()));
                rest = &rest[len..];
            }
            pax = Some(records);
            continue;
        }
        let records = pax.take();
        let get = |k: &str| {
            records
                .as_ref()
                .and_then(|r| r.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
        };
        let prefix = field(&h[345..500]);
        let mut name = field(&h[..100]).to_vec();
        if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
            name = [prefix, b"/", &name].concat();
        }
        out.push(Parsed {
            name: get("path").unwrap_or(name),
            link: get("linkpath").unwrap_or_else(|| field(&h[157..257]).to_vec()),
            typeflag: h[156],
            mode: number(&h[100..108]) as u32,
            data,
            pax: records.is_some(),
        });
    }
    out
}
