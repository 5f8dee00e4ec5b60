//! Git's `--progress` output on stderr (`Receiving objects:  45% (450/1000), 1.2 MiB | ...`,
//! lines ended by `\r` while they update) turned into throttled progress reports.

use std::time::{Duration, Instant};

/// One parsed progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Lower-case phase, e.g. `receiving objects`; `remote: ` phases keep a `remote ` prefix.
    pub phase: String,
    pub percent: Option<u32>,
    pub done: Option<u64>,
    pub total: Option<u64>,
    /// The line ends with `, done.`
    pub finished: bool,
}

impl Progress {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "phase": self.phase, "percent": self.percent, "done": self.done, "total": self.total,
            "finished": self.finished,
        })
    }
}

/// Parse one line; `None` for anything that is not a progress line.
pub(crate) fn parse(line: &str) -> Option<Progress> {
    let line = line.trim();
    let (remote, line) = match line.strip_prefix("remote: ") {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let (phase, rest) = line.split_once(": ")?;
    if phase.is_empty() || phase.len() > 40 || !phase.bytes().all(|b| b.is_ascii_alphabetic() || b == b' ') {
        return None;
    }
    let rest = rest.trim();
    let finished = rest.contains(", done");
    let mut percent = None;
    let (mut done, mut total) = (None, None);
    if let Some((p, after)) = rest.split_once('%') {
        percent = p.trim().parse().ok();
        if let Some(inner) = after
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(i, _)| i)
            && let Some((d, t)) = inner.split_once('/')
        {
            done = d.trim().parse().ok();
            total = t.trim().parse().ok();
        }
    } else {
        // `Enumerating objects: 38, done.`
        done = rest.split(',').next().and_then(|n| n.trim().parse().ok());
    }
    if percent.is_none() && done.is_none() {
        return None;
    }
    let phase = phase.to_ascii_lowercase();
    Some(Progress {
        phase: if remote { format!("remote {phase}") } else { phase },
        percent,
        done,
        total,
        finished,
    })
}

/// Lets a report through when its phase changes, when a phase finishes, or at most once per
/// `interval` otherwise.
pub(crate) struct Throttle {
    interval: Duration,
    last: Option<(String, Instant)>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Throttle { interval, last: None }
    }

    pub fn admit(&mut self, p: &Progress) -> bool {
        let now = Instant::now();
        let pass = match &self.last {
            None => true,
            Some((phase, at)) => *phase != p.phase || p.finished || now.duration_since(*at) >= self.interval,
        };
        if pass {
            self.last = Some((p.phase.clone(), now));
        }
        pass
    }
}

/// Splits a byte stream into lines at `\r` or `\n`.
#[derive(Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, data: &[u8], mut out: impl FnMut(String)) {
        for &b in data {
            if b == b'\r' || b == b'\n' {
                if !self.buf.is_empty() {
                    out(String::from_utf8_lossy(&self.buf).into_owned());
                    self.buf.clear();
                }
            } else if self.buf.len() < 4096 {
                self.buf.push(b);
            }
        }
    }

    pub fn finish(&mut self, mut out: impl FnMut(String)) {
        if !self.buf.is_empty() {
            out(String::from_utf8_lossy(&self.buf).into_owned());
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gits_progress_lines() {
        let p = parse("Receiving objects:  45% (450/1000), 1.20 MiB | 2.00 MiB/s").expect("progress");
        assert_eq!(
            (p.phase.as_str(), p.percent, p.done, p.total, p.finished),
            ("receiving objects", Some(45), Some(450), Some(1000), false)
        );
        let p = parse("remote: Counting objects: 100% (38/38), done.        ").expect("progress");
        assert_eq!((p.phase.as_str(), p.finished), ("remote counting objects", true));
        let p = parse("remote: Enumerating objects: 38, done.").expect("progress");
        assert_eq!((p.done, p.total), (Some(38), None));
        assert_eq!(parse("Cloning into bare repository 'q'..."), None);
        assert_eq!(parse("fatal: repository '/nope' does not exist"), None);
    }

    #[test]
    fn throttle_passes_phase_changes_and_completions_only_when_fast() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        let line = |s: &str| parse(s).expect("progress");
        assert!(t.admit(&line("Receiving objects:   1% (1/100)")));
        assert!(!t.admit(&line("Receiving objects:   2% (2/100)")));
        assert!(t.admit(&line("Receiving objects: 100% (100/100), done.")));
        assert!(t.admit(&line("Resolving deltas:   0% (0/10)")));
    }

    #[test]
    fn splits_at_carriage_returns_and_newlines() {
        let mut s = LineSplitter::default();
        let mut lines = Vec::new();
        s.push(b"a: 1% (1/2)\ra: 2", |l| lines.push(l));
        s.push(b"% (2/2)\nlast", |l| lines.push(l));
        s.finish(|l| lines.push(l));
        assert_eq!(lines, ["a: 1% (1/2)", "a: 2% (2/2)", "last"]);
    }
}
