//! Analytics: operations, errors and bytes read and written per time bucket (minute, hour,
//! day), per session and server-wide; latency percentiles per operation; the most active
//! sessions and paths. Fed by [`Service::observe`](crate::Service) around every use case (one
//! place for every surface) and by the byte counts of file reads as they are served.
//!
//! Everything is in memory and bounded by [`AnalyticsConfig`] whatever the traffic: a fixed
//! number of buckets of each size (the oldest is dropped when a new one starts), at most
//! `max_sessions` sessions counted apart per bucket (the others only in its totals), at most
//! `max_paths` paths tracked per bucket (the Space-Saving algorithm: a new path replaces the
//! least active one and inherits its count, so counts of paths that came late are upper
//! bounds), and one DDSketch per operation per bucket (at most `SKETCH_BINS` bins, 1 %
//! relative error). Nothing survives a restart. It never touches the stores.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use parking_lot::Mutex;
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use aether_core::SessionId;

/// Bins of one latency sketch at most (its memory: 8 bytes each).
const SKETCH_BINS: u32 = 512;
/// Most entries of a top list one query returns.
pub const MAX_TOP: usize = 100;
/// Entries of the top lists when the caller names no number.
pub const DEFAULT_TOP: usize = 10;

/// How much is kept. Every number bounds memory.
#[derive(Clone, Debug)]
pub struct AnalyticsConfig {
    /// Minute buckets kept (how far back `bucket=minute` reaches).
    pub minutes: usize,
    /// Hour buckets kept.
    pub hours: usize,
    /// Day buckets kept.
    pub days: usize,
    /// Sessions counted apart in one bucket; the traffic of more sessions counts in the
    /// bucket's totals only.
    pub max_sessions: usize,
    /// Paths tracked for "most active" in one bucket.
    pub max_paths: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            minutes: 120,
            hours: 48,
            days: 30,
            max_sessions: 1000,
            max_paths: 200,
        }
    }
}

/// The width of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BucketSize {
    #[default]
    Minute,
    Hour,
    Day,
}

impl BucketSize {
    pub fn millis(self) -> i64 {
        match self {
            BucketSize::Minute => 60_000,
            BucketSize::Hour => 3_600_000,
            BucketSize::Day => 86_400_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BucketSize::Minute => "minute",
            BucketSize::Hour => "hour",
            BucketSize::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<BucketSize> {
        [BucketSize::Minute, BucketSize::Hour, BucketSize::Day]
            .into_iter()
            .find(|b| b.as_str() == s)
    }
}

/// What happened in a bucket (or a range of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Use cases called (reads, writes, listings, ...), failed ones included.
    pub operations: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// File content served (reads, a mount's inline contents).
    pub bytes_read: u64,
    /// File content received (writes, range writes, batches).
    pub bytes_written: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.operations += o.operations;
        self.errors += o.errors;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
    }

    fn activity(&self) -> (u64, u64) {
        (self.operations, self.bytes_read + self.bytes_written)
    }
}

/// One finished use case.
#[derive(Debug)]
pub(crate) struct Sample<'a> {
    pub at_ms: i64,
    pub operation: &'static str,
    pub session: Option<&'a SessionId>,
    pub path: Option<&'a str>,
    pub latency: Duration,
    pub ok: bool,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// The most frequent keys, at most `cap` of them (Space-Saving).
#[derive(Debug)]
struct TopK<K> {
    cap: usize,
    counts: HashMap<K, u64>,
}

impl<K: Hash + Eq + Clone> TopK<K> {
    fn new(cap: usize) -> Self {
        TopK {
            cap,
            counts: HashMap::new(),
        }
    }

    fn add(&mut self, key: K, n: u64) {
        if let Some(c) = self.counts.get_mut(&key) {
            *c += n;
            return;
        }
        if self.cap == 0 {
            return;
        }
        if self.counts.len() >= self.cap {
            let least = self
                .counts
                .iter()
                .min_by_key(|(_, c)| **c)
                .map(|(k, c)| (k.clone(), *c));
            if let Some((k, c)) = least {
                self.counts.remove(&k);
                self.counts.insert(key, c + n);
                return;
            }
        }
        self.counts.insert(key, n);
    }
}

struct OpStats {
    latency_us: DDSketch,
    errors: u64,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            // 1 % relative error, values from 1 µs.
            latency_us: DDSketch::new(SketchConfig::new(0.01, SKETCH_BINS, 1.0)),
            errors: 0,
        }
    }
}

struct Bucket {
    start_ms: i64,
    total: Counts,
    sessions: HashMap<SessionId, Counts>,
    paths: TopK<(SessionId, String)>,
    ops: HashMap<&'static str, OpStats>,
}

impl Bucket {
    fn new(start_ms: i64, config: &AnalyticsConfig) -> Bucket {
        Bucket {
            start_ms,
            total: Counts::default(),
            sessions: HashMap::new(),
            paths: TopK::new(config.max_paths),
            ops: HashMap::new(),
        }
    }

    fn session(&mut self, id: &SessionId, max: usize) -> Option<&mut Counts> {
        if !self.sessions.contains_key(id) && self.sessions.len() >= max {
            return None;
        }
        Some(self.sessions.entry(id.clone()).or_default())
    }
}

/// The buckets of one size, oldest first.
struct Ring {
    size: BucketSize,
    keep: usize,
    buckets: std::collections::VecDeque<Bucket>,
}

impl Ring {
    fn new(size: BucketSize, keep: usize) -> Ring {
        Ring {
            size,
            keep: keep.max(1),
            buckets: Default::default(),
        }
    }

    /// The bucket of time `at_ms`; `None` when it is older than every bucket kept.
    fn bucket(&mut self, at_ms: i64, config: &AnalyticsConfig) -> Option<&mut Bucket> {
        let start = at_ms - at_ms.rem_euclid(self.size.millis());
        let newest = self.buckets.back().map(|b| b.start_ms);
        if newest.is_none_or(|n| n < start) {
            self.buckets.push_back(Bucket::new(start, config));
            while self.buckets.len() > self.keep {
                self.buckets.pop_front();
            }
            return self.buckets.back_mut();
        }
        // The clock went back, or a sample finished late: an existing bucket, if kept.
        self.buckets.iter_mut().rev().find(|b| b.start_ms == start)
    }
}

/// The analytics of one server. Cheap to share (one lock, held for a few map updates).
pub(crate) struct Analytics {
    config: AnalyticsConfig,
    rings: Mutex<[Ring; 3]>,
}

/// Which analytics to answer.
#[derive(Clone, Debug, Default)]
pub struct AnalyticsQuery {
    pub session: Option<SessionId>,
    pub bucket: BucketSize,
    /// Milliseconds since the epoch: buckets that end after `since` and start before `until`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Entries of each top list.
    pub top: usize,
}

/// One bucket of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketCounts {
    pub start_ms: i64,
    pub counts: Counts,
}

/// Latency of one operation over a report's buckets (server-wide), in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationLatency {
    pub operation: &'static str,
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
}

/// A path of a session and how many operations named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathActivity {
    pub session: SessionId,
    pub path: String,
    pub operations: u64,
}

/// The answer to an [`AnalyticsQuery`].
#[derive(Clone, Debug)]
pub struct AnalyticsReport {
    pub bucket: BucketSize,
    pub session: Option<SessionId>,
    /// The start of the oldest bucket of this size still kept: nothing older is known.
    pub kept_since_ms: Option<i64>,
    /// Buckets with traffic, oldest first (empty ones are left out).
    pub buckets: Vec<BucketCounts>,
    pub totals: Counts,
    /// Per operation, server-wide, busiest first.
    pub latency: Vec<OperationLatency>,
    /// Busiest first (operations, then bytes).
    pub top_sessions: Vec<(SessionId, Counts)>,
    pub top_paths: Vec<PathActivity>,
    /// Paths tracked at most in one bucket of the report (at most `max_paths`).
    pub tracked_paths: usize,
    /// The configured bounds.
    pub max_paths: usize,
    pub max_sessions: usize,
}

impl Analytics {
    pub(crate) fn new(config: AnalyticsConfig) -> Analytics {
        let rings = [
            Ring::new(BucketSize::Minute, config.minutes),
            Ring::new(BucketSize::Hour, config.hours),
            Ring::new(BucketSize::Day, config.days),
        ];
        Analytics {
            config,
            rings: Mutex::new(rings),
        }
    }

    pub(crate) fn record(&self, s: &Sample<'_>) {
        let counts = Counts {
            operations: 1,
            errors: u64::from(!s.ok),
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
        };
        let micros = (s.latency.as_micros() as f64).max(1.0);
        let mut rings = self.rings.lock();
        for ring in rings.iter_mut() {
            let Some(b) = ring.bucket(s.at_ms, &self.config) else {
                continue;
            };
            b.total.add(&counts);
            let op = b.ops.entry(s.operation).or_insert_with(OpStats::new);
            op.latency_us.add(micros);
            op.errors += counts.errors;
            if let Some(id) = s.session {
                if let Some(c) = b.session(id, self.config.max_sessions) {
                    c.add(&counts);
                }
                if let Some(path) = s.path.filter(|p| !p.is_empty()) {
                    b.paths.add((id.clone(), path.to_owned()), 1);
                }
            }
        }
    }

    /// Bytes of a session's file content served after its use case returned (a read streams
    /// its bytes afterwards).
    pub(crate) fn add_read(&self, at_ms: i64, session: &SessionId, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let counts = Counts {
            bytes_read: bytes,
            ..Default::default()
        };
        let mut rings = self.rings.lock();
        for ring in rings.iter_mut() {
            if let Some(b) = ring.bucket(at_ms, &self.config) {
                b.total.add(&counts);
                if let Some(c) = b.session(session, self.config.max_sessions) {
                    c.add(&counts);
                }
            }
        }
    }

    pub(crate) fn report(&self, q: &AnalyticsQuery) -> AnalyticsReport {
        let rings = self.rings.lock();
        let ring = match q.bucket {
            BucketSize::Minute => &rings[0],
            BucketSize::Hour => &rings[1],
            BucketSize::Day => &rings[2],
        };
        let width = q.bucket.millis();
        let in_range = |b: &&Bucket| {
            q.since_ms.is_none_or(|s| b.start_ms + width > s) && q.until_ms.is_none_or(|u| b.start_ms < u)
        };
        let mut buckets = Vec::new();
        let mut totals = Counts::default();
        let mut sessions: HashMap<&SessionId, Counts> = HashMap::new();
        let mut paths: HashMap<(&SessionId, &str), u64> = HashMap::new();
        let mut ops: HashMap<&'static str, OpStats> = HashMap::new();
        let mut tracked_paths = 0;
        for b in ring.buckets.iter().filter(in_range) {
            let counts = match &q.session {
                Some(id) => b.sessions.get(id).copied().unwrap_or_default(),
                None => b.total,
            };
            if counts != Counts::default() {
                buckets.push(BucketCounts {
                    start_ms: b.start_ms,
                    counts,
                });
            }
            totals.add(&counts);
            for (id, c) in &b.sessions {
                if q.session.as_ref().is_none_or(|s| s == id) {
                    sessions.entry(id).or_default().add(c);
                }
            }
            tracked_paths = tracked_paths.max(b.paths.counts.len());
            for ((id, path), n) in &b.paths.counts {
                if q.session.as_ref().is_none_or(|s| s == id) {
                    *paths.entry((id, path.as_str())).or_default() += n;
                }
            }
            for (name, s) in &b.ops {
                let into = ops.entry(*name).or_insert_with(OpStats::new);
                // Sketches of one configuration always merge.
                let _ = into.latency_us.merge(&s.latency_us);
                into.errors += s.errors;
            }
        }
        let top = q.top.clamp(1, MAX_TOP);
        let mut top_sessions: Vec<(SessionId, Counts)> = sessions.into_iter().map(|(k, v)| (k.clone(), v)).collect();
        top_sessions.sort_by(|a, b| b.1.activity().cmp(&a.1.activity()).then_with(|| a.0.cmp(&b.0)));
        top_sessions.truncate(top);
        let mut top_paths: Vec<PathActivity> = paths
            .into_iter()
            .map(|((id, path), n)| PathActivity {
                session: id.clone(),
                path: path.to_owned(),
                operations: n,
            })
            .collect();
        top_paths.sort_by(|a, b| {
            b.operations
                .cmp(&a.operations)
                .then_with(|| a.session.cmp(&b.session))
                .then_with(|| a.path.cmp(&b.path))
        });
        top_paths.truncate(top);
        let quantile = |s: &DDSketch, q: f64| s.quantile(q).ok().flatten().map_or(0, |v| v.round() as u64);
        let mut latency: Vec<OperationLatency> = ops
            .into_iter()
            .filter(|(_, s)| s.latency_us.count() > 0)
            .map(|(name, s)| OperationLatency {
                operation: name,
                count: s.latency_us.count() as u64,
                errors: s.errors,
                p50_us: quantile(&s.latency_us, 0.5),
                p90_us: quantile(&s.latency_us, 0.9),
                p99_us: quantile(&s.latency_us, 0.99),
            })
            .collect();
        latency.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.operation.cmp(b.operation)));
        AnalyticsReport {
            bucket: q.bucket,
            session: q.session.clone(),
            kept_since_ms: ring.buckets.front().map(|b| b.start_ms),
            buckets,
            totals,
            latency,
            top_sessions,
            top_paths,
            tracked_paths,
            max_paths: self.config.max_paths,
            max_sessions: self.config.max_sessions,
        }
    }
}

/// What a surface asks of [`Service::analytics`]; text as received.
#[derive(Clone, Debug, Default)]
pub struct AnalyticsRequest {
    /// One session's traffic (the caller may read it), or the server's (admin only).
    pub session: Option<String>,
    /// `minute` (default), `hour` or `day`.
    pub bucket: Option<String>,
    /// Milliseconds since the Unix epoch: buckets ending after `since`, starting before `until`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Entries of each top list (1 to [`MAX_TOP`], default [`DEFAULT_TOP`]).
    pub top: Option<u64>,
}

impl crate::Service {
    /// Traffic per bucket, latency per operation and the busiest sessions and paths (see the
    /// module docs). Server-wide needs the admin; a session's needs read access to it.
    pub async fn analytics(&self, p: &crate::Principal, req: AnalyticsRequest) -> crate::Result<AnalyticsReport> {
        let session = match req.session.as_deref().filter(|s| !s.is_empty()) {
            Some(raw) => {
                let id = self.session(p, raw, crate::Access::Read)?;
                self.engine().get_session(&id).await?;
                Some(id)
            }
            None => {
                p.require_admin()?;
                None
            }
        };
        let bucket = match req.bucket.as_deref().filter(|s| !s.is_empty()) {
            None => BucketSize::Minute,
            Some(b) => BucketSize::parse(b)
                .ok_or_else(|| crate::ServiceError::invalid(format!("unknown bucket '{b}' (minute, hour or day)")))?,
        };
        let top = match req.top {
            None => DEFAULT_TOP,
            Some(n @ 1..=100) => n as usize,
            Some(n) => {
                return Err(crate::ServiceError::invalid(format!(
                    "top must be from 1 to {MAX_TOP}, got {n}"
                )));
            }
        };
        Ok(self.inner.analytics.report(&AnalyticsQuery {
            session,
            bucket,
            since_ms: req.since_ms,
            until_ms: req.until_ms,
            top,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(at_ms: i64, op: &'static str, session: &'a SessionId, path: &'a str, us: u64) -> Sample<'a> {
        Sample {
            at_ms,
            operation: op,
            session: Some(session),
            path: Some(path),
            latency: Duration::from_micros(us),
            ok: true,
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    fn query(bucket: BucketSize) -> AnalyticsQuery {
        AnalyticsQuery {
            bucket,
            top: 10,
            ..Default::default()
        }
    }

    #[test]
    fn counts_land_in_their_bucket_and_session() {
        let a = Analytics::new(AnalyticsConfig::default());
        let (s1, s2) = (SessionId::generate(), SessionId::generate());
        // Minute 10: three writes of 100 bytes to s1; minute 11: one read of 7 bytes of s2.
        for i in 0..3 {
            a.record(&Sample {
                bytes_written: 100,
                ..sample(600_000 + i, "write", &s1, "a.txt", 50)
            });
        }
        a.record(&sample(660_000, "read", &s2, "b.txt", 20));
        a.add_read(660_001, &s2, 7);
        let r = a.report(&query(BucketSize::Minute));
        assert_eq!(
            r.buckets,
            vec![
                BucketCounts {
                    start_ms: 600_000,
                    counts: Counts {
                        operations: 3,
                        errors: 0,
                        bytes_read: 0,
                        bytes_written: 300
                    }
                },
                BucketCounts {
                    start_ms: 660_000,
                    counts: Counts {
                        operations: 1,
                        errors: 0,
                        bytes_read: 7,
                        bytes_written: 0
                    }
                },
            ]
        );
        let hour = a.report(&query(BucketSize::Hour));
        assert_eq!(hour.buckets.len(), 1);
        assert_eq!(hour.totals.operations, 4);
        let only_s2 = a.report(&AnalyticsQuery {
            session: Some(s2.clone()),
            ..query(BucketSize::Minute)
        });
        assert_eq!(only_s2.buckets.len(), 1);
        assert_eq!(only_s2.totals.bytes_read, 7);
        assert_eq!(only_s2.top_paths.len(), 1);
        assert_eq!(r.top_sessions[0].0, s1);
        assert_eq!(r.top_paths[0].path, "a.txt");
        assert_eq!(r.top_paths[0].operations, 3);
        // A range that ends before minute 11 holds minute 10 only.
        let early = a.report(&AnalyticsQuery {
            until_ms: Some(660_000),
            ..query(BucketSize::Minute)
        });
        assert_eq!(early.totals.operations, 3);
    }

    #[test]
    fn percentiles_are_ordered_and_near_the_values() {
        let a = Analytics::new(AnalyticsConfig::default());
        let s = SessionId::generate();
        for us in 1..=1000 {
            a.record(&sample(0, "stat", &s, "x", us));
        }
        let r = a.report(&query(BucketSize::Minute));
        let l = &r.latency[0];
        assert_eq!((l.operation, l.count), ("stat", 1000));
        assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us, "{l:?}");
        assert!((490..=510).contains(&l.p50_us), "{l:?}");
        assert!((970..=1010).contains(&l.p99_us), "{l:?}");
    }

    #[test]
    fn memory_stays_at_the_caps_whatever_the_traffic() {
        let a = Analytics::new(AnalyticsConfig {
            minutes: 3,
            max_paths: 50,
            max_sessions: 4,
            ..Default::default()
        });
        let hot = SessionId::generate();
        for i in 0..10_000 {
            a.record(&sample(0, "write", &hot, &format!("cold/{i}"), 5));
            if i % 10 == 0 {
                a.record(&sample(0, "write", &hot, "hot.txt", 5));
            }
        }
        let others: Vec<SessionId> = (0..10).map(|_| SessionId::generate()).collect();
        for s in &others {
            a.record(&sample(0, "write", s, "x", 5));
        }
        let r = a.report(&query(BucketSize::Minute));
        assert_eq!(r.tracked_paths, 50, "the tracked set stays at its cap");
        assert_eq!(r.top_paths[0].path, "hot.txt", "the hot path survives the churn");
        assert_eq!(
            r.top_sessions.len(),
            4,
            "sessions over the cap count in the totals only"
        );
        assert_eq!(r.totals.operations, 10_000 + 1_000 + 10);
        // Buckets: only the newest `minutes` are kept.
        for m in 1..10 {
            a.record(&sample(m * 60_000, "write", &hot, "x", 5));
        }
        let r = a.report(&query(BucketSize::Minute));
        assert_eq!(r.buckets.len(), 3);
        assert_eq!(r.kept_since_ms, Some(7 * 60_000));
    }
}
