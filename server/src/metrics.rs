//! Prometheus metrics (`GET /metrics`, the admin token): every request counted by surface
//! (`rest`, `grpc`, `git`, `meta`), route, method and status, with its latency to the response
//! head; the bytes each store holds on disk (walked at most every [`DISK_EVERY`]). One
//! recorder per server, none global: a test process runs many servers.
//!
//! Routes are the router's templates (`/v1/sessions/{id}/files/{*path}`), gRPC methods their
//! paths (`/aether.v1.FileService/ReadFile`): bounded label sets, whatever clients send (a gRPC
//! method no service has is counted as `unknown`; requests no route matched are not counted).
//!
//! Gauges read at scrape time: blocking jobs running (pieces of streamed responses included)
//! and the configured cap (`--max-blocking-jobs`); requests refused for it are the 503s above;
//! the bytes each in-memory cache holds and its cap (`aether_cache_bytes{cache=...}`, the
//! loaded sessions as `cache="sessions"`), the sessions loaded and the overlay entries they
//! hold; since start, the bytes of file content read and written, garbage collections (runs,
//! bytes and objects removed), imports by result; the mounts attached now.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use aether_service::{Admission, Principal, ServiceError};

use crate::error::ApiError;
use crate::state::AppState;

const REQUESTS: &str = "aether_requests_total";
const DURATION: &str = "aether_request_duration_seconds";
const JOBS: &str = "aether_blocking_jobs_running";
const JOBS_MAX: &str = "aether_blocking_jobs_max";
const STORAGE: &str = "aether_storage_bytes";
const CACHE: &str = "aether_cache_bytes";
const CACHE_MAX: &str = "aether_cache_max_bytes";
const SESSIONS: &str = "aether_sessions_loaded";
const OVERLAY: &str = "aether_overlay_entries_loaded";
const BYTES: &str = "aether_content_bytes_total";
const GC_RUNS: &str = "aether_gc_runs_total";
const GC_BYTES: &str = "aether_gc_removed_bytes_total";
const GC_OBJECTS: &str = "aether_gc_removed_objects_total";
const PACKED: &str = "aether_objects_packed_total";
const LOOSE: &str = "aether_git_loose_objects";
const PACKS: &str = "aether_git_packs";
const IMPORTS: &str = "aether_imports_total";
const MOUNTS: &str = "aether_mounts_attached";

/// Longest the storage gauges may be old: walking the stores' directories costs time in
/// proportion to their files.
pub const DISK_EVERY: Duration = Duration::from_secs(15);

/// Latency buckets, in seconds: a cached read to a large import.
const BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// The memory gauges' values, read at scrape time.
pub struct Memory {
    /// Bytes each cache holds, and the caps.
    pub caches: (aether_core::objects::CacheUsage, aether_core::CacheConfig),
    /// Sessions loaded, overlay entries they hold.
    pub sessions: (usize, usize),
}

/// The server's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    /// When the storage gauges were last set.
    disk_at: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        // Only an empty bucket list is refused: summaries instead of histograms then.
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(
                REQUESTS,
                "Requests answered, by surface (rest, grpc, git, meta), route, method and HTTP status."
            );
            metrics::describe_histogram!(
                DURATION,
                metrics::Unit::Seconds,
                "Time from a request's arrival to its response head, by surface, route and method."
            );
            metrics::describe_gauge!(
                JOBS,
                "Blocking jobs running now, shared by every surface (pieces of streamed responses included)."
            );
            metrics::describe_gauge!(
                JOBS_MAX,
                "Most use cases running blocking work at once (--max-blocking-jobs); more are refused 503 overloaded."
            );
            metrics::describe_gauge!(
                STORAGE,
                metrics::Unit::Bytes,
                "Bytes each store holds on disk: objects (git object database), chunks, metadata, cache."
            );
            metrics::describe_gauge!(
                CACHE,
                metrics::Unit::Bytes,
                "Bytes each in-memory cache holds now, as weighed for its cap: trees, manifests, sizes, revisions, sessions (the sessions loaded in memory)."
            );
            metrics::describe_gauge!(
                CACHE_MAX,
                metrics::Unit::Bytes,
                "The byte cap of each in-memory cache (--tree-cache-bytes, --manifest-cache-bytes, --revision-cache-bytes, --sessions-cache-bytes)."
            );
            metrics::describe_gauge!(SESSIONS, "Sessions loaded in memory.");
            metrics::describe_counter!(
                BYTES,
                metrics::Unit::Bytes,
                "Bytes of file content read (direction=out) and written (direction=in) on every surface since start."
            );
            metrics::describe_counter!(
                GC_RUNS,
                "Garbage collections since start, by result: ran, deferred (an import was running), failed."
            );
            metrics::describe_counter!(
                GC_BYTES,
                metrics::Unit::Bytes,
                "Bytes garbage collections removed from disk since start."
            );
            metrics::describe_counter!(
                GC_OBJECTS,
                "Loose and packed git objects, large-file manifests and chunks garbage collections removed since start."
            );
            metrics::describe_gauge!(
                LOOSE,
                "Loose git objects in the object database (background packing moves them into packs)."
            );
            metrics::describe_gauge!(PACKS, "Packs in the git object database.");
            metrics::describe_counter!(
                PACKED,
                "Loose git objects moved into packs since start, by background packing and collections."
            );
            metrics::describe_counter!(
                IMPORTS,
                "Session imports (tar and git) since start, by result: ok, failed."
            );
            metrics::describe_gauge!(MOUNTS, "Mounts attached now (open gRPC Attach streams).");
            metrics::describe_gauge!(
                OVERLAY,
                "Overlay entries (changes since the last freeze, POSIX details) held by the sessions loaded in memory."
            );
        });
        Metrics {
            recorder: Arc::new(recorder),
            disk_at: Arc::default(),
        }
    }

    /// The text exposition of everything recorded so far, with the gauges of `admission` and
    /// `memory` read now.
    pub fn render(&self, admission: &Admission, memory: &Memory, totals: &aether_service::Totals) -> String {
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::counter!(BYTES, "direction" => "out").absolute(totals.bytes_read);
            metrics::counter!(BYTES, "direction" => "in").absolute(totals.bytes_written);
            for (result, n) in [
                ("ran", totals.gc_runs),
                ("deferred", totals.gc_deferred),
                ("failed", totals.gc_failed),
            ] {
                metrics::counter!(GC_RUNS, "result" => result).absolute(n);
            }
            metrics::counter!(GC_BYTES).absolute(totals.gc_bytes_removed);
            metrics::counter!(GC_OBJECTS).absolute(totals.gc_objects_removed);
            metrics::counter!(PACKED).absolute(totals.objects_packed);
            metrics::counter!(IMPORTS, "result" => "ok").absolute(totals.imports_ok);
            metrics::counter!(IMPORTS, "result" => "failed").absolute(totals.imports_failed);
            metrics::gauge!(MOUNTS).set(totals.mounts_attached as f64);
            metrics::gauge!(JOBS).set(admission.running() as f64);
            metrics::gauge!(JOBS_MAX).set(admission.config().max_blocking_jobs as f64);
            let (used, caps) = memory.caches;
            for (cache, bytes, cap) in [
                ("trees", used.trees, Some(caps.tree_bytes)),
                ("manifests", used.manifests, Some(caps.manifest_bytes)),
                ("sizes", used.sizes, None),
                ("revisions", used.revisions, Some(caps.revision_bytes)),
                ("sessions", used.sessions, Some(caps.session_bytes)),
            ] {
                metrics::gauge!(CACHE, "cache" => cache).set(bytes as f64);
                if let Some(cap) = cap {
                    metrics::gauge!(CACHE_MAX, "cache" => cache).set(cap as f64);
                }
            }
            metrics::gauge!(SESSIONS).set(memory.sessions.0 as f64);
            metrics::gauge!(OVERLAY).set(memory.sessions.1 as f64);
        });
        self.recorder.handle().render()
    }

    /// Set the storage gauges (bytes per store, loose objects and packs) unless they are
    /// younger than [`DISK_EVERY`].
    async fn refresh_disk(&self, state: &AppState, p: &Principal) -> Result<(), ServiceError> {
        let mut at = self.disk_at.lock().await;
        if at.is_some_and(|t| t.elapsed() < DISK_EVERY) {
            return Ok(());
        }
        let d = state.service.disk_usage(p).await?;
        let files = state.service.object_files(p).await?;
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::gauge!(LOOSE).set(files.loose as f64);
            metrics::gauge!(PACKS).set(files.packs as f64);
            for (store, bytes) in [
                ("objects", d.objects),
                ("chunks", d.chunks),
                ("metadata", d.metadata),
                ("cache", d.cache),
            ] {
                metrics::gauge!(STORAGE, "store" => store).set(bytes as f64);
            }
        });
        *at = Some(Instant::now());
        Ok(())
    }

    fn record(&self, surface: &'static str, route: String, method: String, status: u16, took: f64) {
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::counter!(REQUESTS,
                "surface" => surface, "route" => route.clone(), "method" => method.clone(),
                "status" => status.to_string())
            .increment(1);
            metrics::histogram!(DURATION, "surface" => surface, "route" => route, "method" => method).record(took);
        });
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Count and time one matched request (a route layer: the route's template is known).
pub async fn track(Extension(m): Extension<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let (surface, route) = if grpc {
        // Unimplemented (12): a method no service has; its name is the client's to choose.
        let unknown = resp.headers().get("grpc-status").is_some_and(|s| s == "12");
        ("grpc", if unknown { "unknown".to_owned() } else { path })
    } else if template.starts_with("/v1/") {
        ("rest", template)
    } else if template.contains(".git") || template.starts_with("/git") {
        ("git", template)
    } else {
        ("meta", template)
    };
    m.record(
        surface,
        route,
        method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`: the Prometheus text exposition, for the admin token (or anyone, with
/// `--metrics-auth none`).
pub async fn scrape(
    State(state): State<AppState>,
    Extension(m): Extension<Metrics>,
    p: Option<Extension<Principal>>,
) -> Response {
    let p = match p {
        Some(Extension(p)) if p.is_admin() => p,
        _ if state.metrics_open => Principal::admin(aether_core::Surface::Rest),
        _ => return ApiError(ServiceError::forbidden("/metrics needs the admin token")).into_response(),
    };
    if let Err(e) = m.refresh_disk(&state, &p).await {
        return ApiError(e).into_response();
    }
    let memory = match (state.service.cache_usage(&p), state.service.sessions_in_memory(&p)) {
        (Ok(caches), Ok(sessions)) => Memory { caches, sessions },
        (Err(e), _) | (_, Err(e)) => return ApiError(e).into_response(),
    };
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        m.render(state.service.admission(), &memory, &state.service.totals()),
    )
        .into_response()
}
