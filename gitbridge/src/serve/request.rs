//! Parsing upload-pack requests: protocol v2 commands (`ls-refs`, `fetch`) and the protocol v0/v1
//! want/have request of a stateless (HTTP) round. Everything is parsed and checked before a
//! response starts, so bad input becomes a 400 rather than a broken stream.

use gix::ObjectId;

use super::ServeError;
use super::pktline::{Line, Reader};

/// What the client asked a pack to be filtered by (`--filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    #[default]
    None,
    /// `blob:none`: no blob found through trees.
    BlobNone,
    /// `blob:limit=<n>`: no blob of `n` bytes or more found through trees.
    BlobLimit(u64),
}

impl Filter {
    pub fn parse(spec: &str) -> Result<Filter, ServeError> {
        if spec == "blob:none" {
            return Ok(Filter::BlobNone);
        }
        if let Some(limit) = spec.strip_prefix("blob:limit=") {
            let (digits, unit) = match limit.as_bytes().last() {
                Some(b'k' | b'K') => (&limit[..limit.len() - 1], 1u64 << 10),
                Some(b'm' | b'M') => (&limit[..limit.len() - 1], 1 << 20),
                Some(b'g' | b'G') => (&limit[..limit.len() - 1], 1 << 30),
                _ => (limit, 1),
            };
            let n: u64 = digits
                .parse()
                .map_err(|_| ServeError::Protocol(format!("invalid filter-spec '{spec}'")))?;
            return Ok(Filter::BlobLimit(n.saturating_mul(unit)));
        }
        Err(ServeError::Protocol(format!(
            "unsupported filter-spec '{spec}' (supported: blob:none, blob:limit=<n>)"
        )))
    }

    /// Whether a blob of `size` bytes found through a tree goes in the pack.
    pub fn keeps_blob(self, size: impl FnOnce() -> Option<u64>) -> bool {
        match self {
            Filter::None => true,
            Filter::BlobNone => false,
            Filter::BlobLimit(n) => size().is_some_and(|s| s < n),
        }
    }
}

/// How the pack and progress are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideBand {
    /// Raw pack bytes (v0 client without side-band).
    None,
    /// `side-band`: payloads of at most 995 bytes.
    Small,
    /// `side-band-64k` (always in v2): payloads of at most 65515 bytes.
    Large,
}

/// Everything a fetch asks for, in either protocol version.
#[derive(Debug, Clone, Default)]
pub struct FetchArgs {
    pub wants: Vec<ObjectId>,
    pub haves: Vec<ObjectId>,
    pub done: bool,
    /// Commits the client's repository is shallow at.
    pub shallow: Vec<ObjectId>,
    pub depth: Option<u32>,
    pub deepen_relative: bool,
    /// `deepen-since`: seconds since the epoch.
    pub deepen_since: Option<i64>,
    pub filter: Filter,
    pub no_progress: bool,
    pub sideband_all: bool,
    /// v0 only: capabilities named on the first want line.
    pub multi_ack_detailed: bool,
    pub no_done: bool,
    pub side_band: Option<SideBand>,
    /// The client completes thin packs: deltas may use bases it has that the pack lacks.
    pub thin_pack: bool,
    /// The client reads deltas that name their base by offset (`ofs-delta`); without it every
    /// delta names its base by id.
    pub ofs_delta: bool,
    /// v0 only: the request ended without a flush or `done` after the haves (the first round
    /// of a shallow fetch, which only asks for the shallow list).
    pub ended_early: bool,
}

impl FetchArgs {
    /// The deltas the client reads.
    pub fn deltas(&self) -> super::pack::Deltas {
        super::pack::Deltas {
            thin: self.thin_pack,
            ofs: self.ofs_delta,
        }
    }

    pub fn deepens(&self) -> bool {
        self.depth.is_some() || self.deepen_since.is_some()
    }
}

/// `ls-refs` arguments.
#[derive(Debug, Clone, Default)]
pub struct LsRefsArgs {
    pub symrefs: bool,
    pub peel: bool,
    pub prefixes: Vec<String>,
}

/// A protocol v2 command.
#[derive(Debug, Clone)]
pub enum Command {
    LsRefs(LsRefsArgs),
    Fetch(FetchArgs),
}

fn oid(arg: &str, what: &str) -> Result<ObjectId, ServeError> {
    if arg.len() != 40 {
        return Err(ServeError::Protocol(format!(
            "{what}: '{arg}' is not a 40-hex object id"
        )));
    }
    ObjectId::from_hex(arg.as_bytes())
        .map_err(|_| ServeError::Protocol(format!("{what}: '{arg}' is not a 40-hex object id")))
}

fn number<T: std::str::FromStr>(arg: &str, what: &str) -> Result<T, ServeError> {
    arg.parse()
        .map_err(|_| ServeError::Protocol(format!("{what}: '{arg}' is not a number")))
}

/// Apply one fetch argument shared by v0 and v2; `false` if it is not one of them.
fn shared_fetch_arg(args: &mut FetchArgs, line: &str) -> Result<bool, ServeError> {
    let (key, value) = line.split_once(' ').unwrap_or((line, ""));
    match key {
        "want" => args.wants.push(oid(value, "want")?),
        "have" => args.haves.push(oid(value, "have")?),
        "shallow" => args.shallow.push(oid(value, "shallow")?),
        "deepen" => {
            let d: u32 = number(value, "deepen")?;
            if d == 0 {
                return Err(ServeError::Protocol("deepen: depth must be positive".into()));
            }
            args.depth = Some(d);
        }
        "deepen-since" => args.deepen_since = Some(number(value, "deepen-since")?),
        "deepen-relative" => args.deepen_relative = true,
        "deepen-not" => {
            return Err(ServeError::Protocol(
                "deepen-not (--shallow-exclude) is not supported".into(),
            ));
        }
        "filter" => args.filter = Filter::parse(value)?,
        "done" => args.done = true,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parse a protocol v2 request: `command=X`, capability lines, a delim, arguments, a flush.
pub fn parse_v2(body: &[u8]) -> Result<Command, ServeError> {
    let mut r = Reader::new(body);
    let command = match r.next_line()? {
        Some(Line::Text(l)) => l
            .strip_prefix("command=")
            .ok_or_else(|| ServeError::Protocol(format!("expected command=<name>, got '{l}'")))?
            .to_owned(),
        other => return Err(ServeError::Protocol(format!("expected a command, got {other:?}"))),
    };
    // Capabilities until the delim (or a flush for a command without arguments).
    let mut has_args = false;
    loop {
        match r.next_line()? {
            Some(Line::Text(cap)) => {
                if let Some(format) = cap.strip_prefix("object-format=")
                    && format != "sha1"
                {
                    return Err(ServeError::Protocol(format!("object-format {format} is not supported")));
                }
            }
            Some(Line::Delim) => {
                has_args = true;
                break;
            }
            Some(Line::Flush) => break,
            other => return Err(ServeError::Protocol(format!("unexpected {other:?} in capabilities"))),
        }
    }
    let mut args = Vec::new();
    if has_args {
        loop {
            match r.next_line()? {
                Some(Line::Text(a)) => args.push(a),
                Some(Line::Flush) => break,
                other => return Err(ServeError::Protocol(format!("unexpected {other:?} in arguments"))),
            }
        }
    }
    match command.as_str() {
        "ls-refs" => {
            let mut out = LsRefsArgs::default();
            for a in args {
                match a.split_once(' ') {
                    _ if a == "symrefs" => out.symrefs = true,
                    _ if a == "peel" => out.peel = true,
                    _ if a == "unborn" => {}
                    Some(("ref-prefix", p)) => out.prefixes.push(p.to_owned()),
                    _ => return Err(ServeError::Protocol(format!("ls-refs: unknown argument '{a}'"))),
                }
            }
            Ok(Command::LsRefs(out))
        }
        "fetch" => {
            let mut out = FetchArgs {
                side_band: Some(SideBand::Large),
                ..FetchArgs::default()
            };
            for a in args {
                if shared_fetch_arg(&mut out, a)? {
                    continue;
                }
                match a {
                    "thin-pack" => out.thin_pack = true,
                    "ofs-delta" => out.ofs_delta = true,
                    "include-tag" | "wait-for-done" => {}
                    "no-progress" => out.no_progress = true,
                    "sideband-all" => out.sideband_all = true,
                    _ => return Err(ServeError::Protocol(format!("fetch: unknown argument '{a}'"))),
                }
            }
            if out.wants.is_empty() {
                return Err(ServeError::Protocol("fetch: no want lines".into()));
            }
            Ok(Command::Fetch(out))
        }
        other => Err(ServeError::Protocol(format!("unknown command '{other}'"))),
    }
}

/// Parse one stateless v0/v1 upload-pack request: wants (capabilities on the first), shallow and
/// deepen lines, a flush, then haves ending in a flush (another round follows) or `done`.
pub fn parse_v0(body: &[u8]) -> Result<FetchArgs, ServeError> {
    let mut r = Reader::new(body);
    let mut out = FetchArgs::default();
    let mut first = true;
    loop {
        match r.next_line()? {
            Some(Line::Text(l)) => {
                let l = if first && l.starts_with("want ") {
                    first = false;
                    let (want, caps) = l.split_at(l.len().min(45));
                    for cap in caps.split(' ').filter(|c| !c.is_empty()) {
                        match cap {
                            "multi_ack_detailed" => out.multi_ack_detailed = true,
                            "no-done" => out.no_done = true,
                            "thin-pack" => out.thin_pack = true,
                            "ofs-delta" => out.ofs_delta = true,
                            "no-progress" => out.no_progress = true,
                            "deepen-relative" => out.deepen_relative = true,
                            "side-band-64k" => out.side_band = Some(SideBand::Large),
                            "side-band" if out.side_band.is_none() => out.side_band = Some(SideBand::Small),
                            _ => {}
                        }
                    }
                    want
                } else {
                    l
                };
                if !shared_fetch_arg(&mut out, l.trim_end())? {
                    return Err(ServeError::Protocol(format!(
                        "unexpected line '{l}' in upload-pack request"
                    )));
                }
            }
            Some(Line::Flush) => break,
            None if out.wants.is_empty() => return Err(ServeError::Protocol("empty upload-pack request".into())),
            other => return Err(ServeError::Protocol(format!("unexpected {other:?} in wants"))),
        }
    }
    if out.wants.is_empty() {
        return Err(ServeError::Protocol("upload-pack request without want lines".into()));
    }
    // Haves; `done` may follow the flush directly (a clone).
    loop {
        match r.next_line()? {
            Some(Line::Text(l)) => {
                let l = l.trim_end();
                if !(l.starts_with("have ") || l == "done") || !shared_fetch_arg(&mut out, l)? {
                    return Err(ServeError::Protocol(format!("unexpected line '{l}' among haves")));
                }
                if out.done {
                    break;
                }
            }
            Some(Line::Flush) => break,
            None => {
                out.ended_early = true;
                break;
            }
            other => return Err(ServeError::Protocol(format!("unexpected {other:?} among haves"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::pktline;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn v2_fetch_with_shallow_and_filter() {
        let mut body = Vec::new();
        pktline::text(&mut body, "command=fetch");
        pktline::text(&mut body, "object-format=sha1");
        pktline::delim(&mut body);
        for l in [
            format!("want {A}"),
            format!("have {B}"),
            "deepen 3".into(),
            "filter blob:limit=2k".into(),
            "done".into(),
        ] {
            pktline::text(&mut body, &l);
        }
        pktline::flush(&mut body);
        let Command::Fetch(f) = parse_v2(&body).unwrap() else {
            panic!("not a fetch")
        };
        assert_eq!(f.wants, vec![ObjectId::from_hex(A.as_bytes()).unwrap()]);
        assert_eq!(f.haves.len(), 1);
        assert_eq!(f.depth, Some(3));
        assert_eq!(f.filter, Filter::BlobLimit(2048));
        assert!(f.done);
    }

    #[test]
    fn v0_request_with_capabilities() {
        let mut body = Vec::new();
        pktline::text(
            &mut body,
            &format!("want {A} multi_ack_detailed side-band-64k no-done agent=git/2"),
        );
        pktline::text(&mut body, &format!("want {B}"));
        pktline::flush(&mut body);
        pktline::text(&mut body, &format!("have {B}"));
        pktline::flush(&mut body);
        let f = parse_v0(&body).unwrap();
        assert_eq!(f.wants.len(), 2);
        assert_eq!(f.haves.len(), 1);
        assert!(f.multi_ack_detailed && f.no_done && !f.done);
        assert_eq!(f.side_band, Some(SideBand::Large));
    }

    #[test]
    fn bad_requests_are_protocol_errors() {
        let mut bad_oid = Vec::new();
        pktline::text(&mut bad_oid, "want xyz");
        pktline::flush(&mut bad_oid);
        let mut unknown = Vec::new();
        pktline::text(&mut unknown, "command=push");
        pktline::flush(&mut unknown);
        assert!(matches!(parse_v0(&bad_oid), Err(ServeError::Protocol(_))));
        assert!(matches!(parse_v2(&unknown), Err(ServeError::Protocol(_))));
        assert!(matches!(parse_v0(b"garbage"), Err(ServeError::Protocol(_))));
        assert!(matches!(Filter::parse("tree:0"), Err(ServeError::Protocol(_))));
    }
}
