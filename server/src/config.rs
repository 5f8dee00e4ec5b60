//! Server configuration. Precedence, highest first: command-line flags, `AETHER_*` environment
//! variables, the TOML file (`--config` / `AETHER_CONFIG`), built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// The admin token.
    Admin,
    /// No token.
    None,
}

/// What `aetherd` does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Collect garbage in a data directory no server is using (refused while one is: use
    /// `POST /v1/admin/gc` on a running server), then print the report as JSON.
    Gc {
        /// Only count what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Parser)]
#[command(name = "aetherd", version, about = "AetherFS server: sessions over HTTP")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file.
    #[arg(long, env = "AETHER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "AETHER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./aether-data].
    #[arg(long, env = "AETHER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace [default: info].
    #[arg(long, env = "AETHER_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "AETHER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Largest file accepted, in bytes [default: 68719476736].
    #[arg(long, env = "AETHER_MAX_FILE_SIZE")]
    pub max_file_size: Option<u64>,
    /// Largest JSON request body, in bytes [default: 1048576].
    #[arg(long, env = "AETHER_MAX_JSON_BODY")]
    pub max_json_body: Option<usize>,
    /// Most bytes of inline content and paths in one gRPC batch (ApplyBatch) [default: 33554432].
    #[arg(long, env = "AETHER_MAX_BATCH_BYTES")]
    pub max_batch_bytes: Option<usize>,
    /// Longest path, in bytes [default: 4096].
    #[arg(long, env = "AETHER_MAX_PATH_LEN")]
    pub max_path_len: Option<usize>,
    /// Most entries in one import [default: 2000000].
    #[arg(long, env = "AETHER_MAX_IMPORT_FILES")]
    pub max_import_files: Option<u64>,
    /// Deepest level a walk over a tree (recursive listing, commit diff) descends to; a deeper
    /// tree is refused as too large [default: the deepest max_path_len allows, 2048].
    #[arg(long, env = "AETHER_MAX_TREE_DEPTH")]
    pub max_tree_depth: Option<usize>,
    /// Most entries one walk over a tree produces (a recursive listing, a commit's changes)
    /// [default: 10000000].
    #[arg(long, env = "AETHER_MAX_WALK_ENTRIES")]
    pub max_walk_entries: Option<u64>,
    /// Most entries a gRPC ListTree answers with in its one message (recursive or not); a
    /// larger tree gets RESOURCE_EXHAUSTED (WalkTree and REST stream instead), and a REST
    /// listing of one larger directory streams [default: 100000].
    #[arg(long, env = "AETHER_MAX_LIST_TREE_ENTRIES")]
    pub max_list_tree_entries: Option<usize>,
    /// Files of at least this many bytes go to the chunk store [default: 1048576].
    #[arg(long, env = "AETHER_LARGE_FILE_THRESHOLD")]
    pub large_file_threshold: Option<u64>,
    /// zlib level (0-9) of the loose git objects small files are stored as; 0 stores them
    /// uncompressed, the least CPU per file written [default: 0].
    #[arg(long, env = "AETHER_LOOSE_COMPRESSION")]
    pub loose_compression: Option<u32>,
    /// Longest a git import may spend fetching, in seconds [default: 3600].
    #[arg(long, env = "AETHER_IMPORT_TIMEOUT_SECS")]
    pub import_timeout_secs: Option<u64>,
    /// Most bytes a git import may fetch (pack data as received) [default: 68719476736].
    #[arg(long, env = "AETHER_MAX_IMPORT_BYTES")]
    pub max_import_bytes: Option<u64>,
    /// Most bytes the git serving caches (compressed large blobs, deltas kept from imports)
    /// may hold on disk; least recently used entries go first, 0 keeps none [default: 10737418240].
    #[arg(long, env = "AETHER_GIT_CACHE_BYTES")]
    pub git_cache_bytes: Option<u64>,
    /// Most memory the cache of decoded git trees may hold, in bytes (weighed by entries and
    /// names, so one huge directory counts as much as many small ones) [default: 67108864].
    #[arg(long, env = "AETHER_TREE_CACHE_BYTES")]
    pub tree_cache_bytes: Option<u64>,
    /// Most memory the cache of large files' chunk manifests may hold, in bytes [default: 33554432].
    #[arg(long, env = "AETHER_MANIFEST_CACHE_BYTES")]
    pub manifest_cache_bytes: Option<u64>,
    /// Most memory the cache of checkpoints' recorded states (modes, mtimes, empty
    /// directories) may hold, in bytes [default: 134217728].
    #[arg(long, env = "AETHER_REVISION_CACHE_BYTES")]
    pub revision_cache_bytes: Option<u64>,
    /// Most memory the sessions loaded in memory may hold, weighed by their overlays, in
    /// bytes; idle sessions beyond it are evicted and loaded again on their next use
    /// [default: 268435456].
    #[arg(long, env = "AETHER_SESSIONS_CACHE_BYTES")]
    pub sessions_cache_bytes: Option<u64>,
    /// Longest a client may take to send a request's headers, in seconds (also the longest a
    /// new connection may stay silent); a slower connection is closed [default: 10].
    #[arg(long, env = "AETHER_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Most client connections served at once; one more is answered 503 with `Retry-After`
    /// (gRPC: UNAVAILABLE, code `overloaded`) and closed [default: 1024].
    #[arg(long, env = "AETHER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Longest a request body may send nothing, in seconds; the request then fails with 408
    /// (`timeout`) and its work is dropped [default: 30].
    #[arg(long, env = "AETHER_BODY_IDLE_TIMEOUT_SECS")]
    pub body_idle_timeout_secs: Option<u64>,
    /// Longest a client may take none of a response, in seconds; its connection (or stream) is
    /// then closed and the work feeding it stops [default: 30].
    #[arg(long, env = "AETHER_RESPONSE_WRITE_TIMEOUT_SECS")]
    pub response_write_timeout_secs: Option<u64>,
    /// Longest a connection may stay open with no request in flight, in seconds (an HTTP/1.1
    /// keep-alive connection is also closed when its next request's headers take longer than
    /// the header read timeout) [default: 60].
    #[arg(long, env = "AETHER_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Most use cases running blocking work (writes, reads, imports, exports, git fetches,
    /// checkpoints, listings) at once, shared by REST, gRPC and git; more are answered 503 with
    /// `Retry-After` (gRPC: UNAVAILABLE), code `overloaded` [default: 64].
    #[arg(long, env = "AETHER_MAX_BLOCKING_JOBS")]
    pub max_blocking_jobs: Option<usize>,
    /// The `Retry-After` of an `overloaded` answer, in seconds [default: 1].
    #[arg(long, env = "AETHER_RETRY_AFTER_SECS")]
    pub retry_after_secs: Option<u64>,
    /// Requests a second one scoped token may make on every surface together, on average;
    /// more are answered 429 with `Retry-After` (gRPC: RESOURCE_EXHAUSTED), code
    /// `rate_limited`. 0: no limit. The admin token is never limited [default: 0].
    #[arg(long, env = "AETHER_TOKEN_REQUESTS_PER_SECOND")]
    pub token_requests_per_second: Option<u32>,
    /// Requests one scoped token may make at once above its rate [default: the rate].
    #[arg(long, env = "AETHER_TOKEN_BURST")]
    pub token_burst: Option<u32>,
    /// Days of activity (each session's event log) kept; older events are pruned with each
    /// garbage collection, a session's newest always kept. 0: no limit [default: 30].
    #[arg(long, env = "AETHER_ACTIVITY_MAX_AGE_DAYS")]
    pub activity_max_age_days: Option<u64>,
    /// Most events kept per session (the newest); 0: no limit [default: 100000].
    #[arg(long, env = "AETHER_ACTIVITY_MAX_EVENTS")]
    pub activity_max_events: Option<u64>,
    /// Who may read `/metrics`: `admin` (the admin token) or `none` (anyone who can reach the
    /// server: for a Prometheus scraper on a private network) [default: admin].
    #[arg(long, env = "AETHER_METRICS_AUTH")]
    pub metrics_auth: Option<MetricsAuth>,
    /// Seconds between background garbage collections; 0 turns them off [default: 3600].
    #[arg(long, env = "AETHER_GC_INTERVAL_SECS")]
    pub gc_interval_secs: Option<u64>,
    /// Seconds between checks for loose git objects to pack; 0 turns background packing off
    /// [default: 60].
    #[arg(long, env = "AETHER_PACK_INTERVAL_SECS")]
    pub pack_interval_secs: Option<u64>,
    /// Loose git objects (estimated, as git's `gc.auto` does) from which a check packs them
    /// [default: 16384].
    #[arg(long, env = "AETHER_PACK_LOOSE_OBJECTS")]
    pub pack_loose_objects: Option<u64>,
    /// Objects written (or written again) this many seconds ago or less are never collected:
    /// an import or upload may reference what it wrote only when it ends [default: 3600].
    #[arg(long, env = "AETHER_GC_GRACE_SECS")]
    pub gc_grace_secs: Option<u64>,
    /// Checkpoints of a session kept by default: the newest this many (a session's own
    /// `retention` wins); older ones expire before each garbage collection. 0: no limit
    /// [default: 0].
    #[arg(long, env = "AETHER_CHECKPOINT_KEEP_LAST")]
    pub checkpoint_keep_last: Option<u64>,
    /// Checkpoints kept by default: those taken this many days ago or less (kept if this or
    /// `--checkpoint-keep-last` keeps them). 0: no limit [default: 0].
    #[arg(long, env = "AETHER_CHECKPOINT_KEEP_DAYS")]
    pub checkpoint_keep_days: Option<u64>,
    /// Archived sessions unchanged for this many days are deleted before a garbage collection.
    /// 0: never [default: 0].
    #[arg(long, env = "AETHER_ARCHIVED_EXPIRY_DAYS")]
    pub archived_expiry_days: Option<u64>,
    /// Heavy operations (imports, exports, git fetches and clones, checkpoints, restores,
    /// commits) one scoped token may run at once; more are answered 429, code `rate_limited`.
    /// 0: no limit [default: 8].
    #[arg(long, env = "AETHER_TOKEN_MAX_HEAVY")]
    pub token_max_heavy: Option<usize>,
    /// On SIGTERM/SIGINT: how long requests in flight may take to finish, in seconds, before
    /// their connections are closed. Watch streams end at once (clients reconnect) [default: 10].
    #[arg(long, env = "AETHER_SHUTDOWN_DRAIN_SECS")]
    pub shutdown_drain_secs: Option<u64>,
    /// Most malloc arenas the process uses (glibc keeps what each thread's arena freed; fewer
    /// arenas bound the memory bursts of blocking work leave resident). aetherd restarts itself
    /// at once with `MALLOC_ARENA_MAX` set to it; 0 leaves glibc's default, and a
    /// `MALLOC_ARENA_MAX` already in the environment wins [default: the cores, at least 2].
    #[arg(long, env = "AETHER_MALLOC_ARENAS")]
    pub malloc_arenas: Option<usize>,
    /// After the drain: how long blocking work still running (an import, a checksum) may take
    /// before the process exits anyway, in seconds [default: 5].
    #[arg(long, env = "AETHER_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// How long a read or a checkpoint, commit, fork or export of a session waits for the
    /// mounts holding changes of it to hand them over, in milliseconds; past it the call goes
    /// on without them and says so (a `handoff_incomplete` event) [default: 5000].
    #[arg(long, env = "AETHER_HANDOFF_TIMEOUT_MS")]
    pub handoff_timeout_ms: Option<u64>,
    /// Minute buckets the analytics keep (`GET /v1/analytics?bucket=minute` reaches this far
    /// back) [default: 120].
    #[arg(long, env = "AETHER_ANALYTICS_MINUTES")]
    pub analytics_minutes: Option<usize>,
    /// Hour buckets the analytics keep [default: 48].
    #[arg(long, env = "AETHER_ANALYTICS_HOURS")]
    pub analytics_hours: Option<usize>,
    /// Day buckets the analytics keep [default: 30].
    #[arg(long, env = "AETHER_ANALYTICS_DAYS")]
    pub analytics_days: Option<usize>,
    /// Sessions the analytics count apart in one bucket (more count in its totals only); also
    /// the most sessions whose last error health remembers [default: 1000].
    #[arg(long, env = "AETHER_ANALYTICS_MAX_SESSIONS")]
    pub analytics_max_sessions: Option<usize>,
    /// Paths the analytics track in one bucket for "most active paths" [default: 200].
    #[arg(long, env = "AETHER_ANALYTICS_MAX_PATHS")]
    pub analytics_max_paths: Option<usize>,
    /// Seconds a mount may hold a change the server does not have before its session's health
    /// is `degraded` [default: 30].
    #[arg(long, env = "AETHER_STALE_MOUNT_SECS")]
    pub stale_mount_secs: Option<u64>,
    /// Where session metadata lives: `sqlite:<file>` or `memory:` (nothing kept after exit)
    /// [default: sqlite:<data dir>/meta.db].
    #[arg(long, env = "AETHER_METADATA_STORE")]
    pub metadata_store: Option<String>,
    /// Where git objects live: `local:<dir>` [default: local:<data dir>/objects.git].
    #[arg(long, env = "AETHER_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Where the chunks of large files live: `local:<dir>` or `memory:` [default:
    /// local:<data dir>/chunks].
    #[arg(long, env = "AETHER_CHUNK_STORE")]
    pub chunk_store: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The configuration file: the same settings as the flags, all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    pub max_file_size: Option<u64>,
    pub max_json_body: Option<usize>,
    pub max_batch_bytes: Option<usize>,
    pub max_path_len: Option<usize>,
    pub max_import_files: Option<u64>,
    pub max_tree_depth: Option<usize>,
    pub max_walk_entries: Option<u64>,
    pub max_list_tree_entries: Option<usize>,
    pub large_file_threshold: Option<u64>,
    pub loose_compression: Option<u32>,
    pub import_timeout_secs: Option<u64>,
    pub max_import_bytes: Option<u64>,
    pub git_cache_bytes: Option<u64>,
    pub tree_cache_bytes: Option<u64>,
    pub manifest_cache_bytes: Option<u64>,
    pub revision_cache_bytes: Option<u64>,
    pub sessions_cache_bytes: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub body_idle_timeout_secs: Option<u64>,
    pub response_write_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_blocking_jobs: Option<usize>,
    pub retry_after_secs: Option<u64>,
    pub token_requests_per_second: Option<u32>,
    pub token_burst: Option<u32>,
    pub token_max_heavy: Option<usize>,
    pub gc_interval_secs: Option<u64>,
    pub pack_interval_secs: Option<u64>,
    pub pack_loose_objects: Option<u64>,
    pub gc_grace_secs: Option<u64>,
    pub checkpoint_keep_last: Option<u64>,
    pub checkpoint_keep_days: Option<u64>,
    pub archived_expiry_days: Option<u64>,
    pub metrics_auth: Option<MetricsAuth>,
    pub activity_max_age_days: Option<u64>,
    pub activity_max_events: Option<u64>,
    pub shutdown_drain_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub malloc_arenas: Option<usize>,
    pub handoff_timeout_ms: Option<u64>,
    pub analytics_minutes: Option<usize>,
    pub analytics_hours: Option<usize>,
    pub analytics_days: Option<usize>,
    pub analytics_max_sessions: Option<usize>,
    pub analytics_max_paths: Option<usize>,
    pub stale_mount_secs: Option<u64>,
    pub metadata_store: Option<String>,
    pub object_store: Option<String>,
    pub chunk_store: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_file_size: u64,
    pub max_json_body: usize,
    pub max_batch_bytes: usize,
    pub max_path_len: usize,
    pub max_import_files: u64,
    /// Deepest level a walk over a tree descends to; `None`: the deepest `max_path_len` allows.
    pub max_tree_depth: Option<usize>,
    /// Most entries one walk over a tree produces.
    pub max_walk_entries: u64,
    /// Most entries of a recursive gRPC `ListTree` (one message).
    pub max_list_tree_entries: usize,
    pub large_file_threshold: u64,
    pub loose_compression: u32,
    /// Limits of git imports: how long the fetch may take and how much it may bring.
    pub import_timeout_secs: u64,
    pub max_import_bytes: u64,
    pub git_cache_bytes: u64,
    /// Byte caps of the engine's memory caches.
    pub caches: aether_core::CacheConfig,
    /// How long reads and freezes wait for mounts to hand their changes over.
    pub handoff_timeout: Duration,
    /// Connection handling: timeouts, connection limit, shutdown drain time.
    pub connections: Connections,
    /// How many use cases may run blocking work at once.
    pub admission: aether_service::AdmissionConfig,
    pub quotas: aether_service::QuotaConfig,
    pub gc: aether_service::GcConfig,
    /// What the analytics keep in memory.
    pub analytics: aether_service::AnalyticsConfig,
    /// How long a mount may hold a change before its session's health is `degraded`.
    pub stale_mount: Duration,
    pub metrics_auth: MetricsAuth,
    /// After the drain, how long blocking work may still run before the process exits.
    pub shutdown_grace: Duration,
    /// Most malloc arenas (see `malloc`); 0: glibc's default.
    pub malloc_arenas: usize,
    /// Which backend holds each store (`None`: the default under the data directory).
    pub stores: aether_core::StoreConfig,
}

/// How the listener treats connections (see `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Longest a client may take to send a request's headers (and the longest a new
    /// connection may stay silent) before the connection is closed.
    pub header_read_timeout: Duration,
    /// Most connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Longest a request body may send nothing.
    pub body_idle_timeout: Duration,
    /// Longest a client may take none of a response (a write that cannot proceed).
    pub response_write_timeout: Duration,
    /// Longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// What a refused connection is told to wait before trying again.
    pub retry_after: Duration,
    /// How long requests in flight may take to finish after a shutdown signal.
    pub shutdown_drain: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            body_idle_timeout: Duration::from_secs(30),
            response_write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            retry_after: Duration::from_secs(1),
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./aether-data"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_file_size: 64 << 30,
            max_json_body: 1 << 20,
            max_batch_bytes: 32 << 20,
            max_path_len: 4096,
            max_import_files: 2_000_000,
            max_tree_depth: None,
            max_walk_entries: 10_000_000,
            max_list_tree_entries: 100_000,
            large_file_threshold: 1 << 20,
            loose_compression: 0,
            import_timeout_secs: 3600,
            max_import_bytes: 64 << 30,
            git_cache_bytes: 10 << 30,
            caches: aether_core::CacheConfig::default(),
            handoff_timeout: Duration::from_secs(5),
            connections: Connections::default(),
            admission: aether_service::AdmissionConfig::default(),
            quotas: aether_service::QuotaConfig::default(),
            gc: aether_service::GcConfig::default(),
            analytics: aether_service::AnalyticsConfig::default(),
            stale_mount: aether_service::DEFAULT_STALE_MOUNT,
            metrics_auth: MetricsAuth::Admin,
            shutdown_grace: Duration::from_secs(5),
            malloc_arenas: crate::malloc::default_arenas(),
            stores: aether_core::StoreConfig::default(),
        }
    }
}

pub fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("in {}: {e}", path.display()))
}

impl Config {
    pub fn resolve(cli: Cli) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(p) => read_file_config(p)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let retry_after = cli.retry_after_secs.or(file.retry_after_secs);
        let config = Config {
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            log_level: cli.log_level.or(file.log_level).unwrap_or(d.log_level),
            log_format: cli.log_format.or(file.log_format).unwrap_or(d.log_format),
            max_file_size: cli.max_file_size.or(file.max_file_size).unwrap_or(d.max_file_size),
            max_json_body: cli.max_json_body.or(file.max_json_body).unwrap_or(d.max_json_body),
            max_batch_bytes: cli
                .max_batch_bytes
                .or(file.max_batch_bytes)
                .unwrap_or(d.max_batch_bytes),
            max_path_len: cli.max_path_len.or(file.max_path_len).unwrap_or(d.max_path_len),
            max_import_files: cli
                .max_import_files
                .or(file.max_import_files)
                .unwrap_or(d.max_import_files),
            max_tree_depth: cli.max_tree_depth.or(file.max_tree_depth).or(d.max_tree_depth),
            max_walk_entries: cli
                .max_walk_entries
                .or(file.max_walk_entries)
                .unwrap_or(d.max_walk_entries),
            max_list_tree_entries: cli
                .max_list_tree_entries
                .or(file.max_list_tree_entries)
                .unwrap_or(d.max_list_tree_entries),
            large_file_threshold: cli
                .large_file_threshold
                .or(file.large_file_threshold)
                .unwrap_or(d.large_file_threshold),
            loose_compression: cli
                .loose_compression
                .or(file.loose_compression)
                .unwrap_or(d.loose_compression),
            import_timeout_secs: cli
                .import_timeout_secs
                .or(file.import_timeout_secs)
                .unwrap_or(d.import_timeout_secs),
            max_import_bytes: cli
                .max_import_bytes
                .or(file.max_import_bytes)
                .unwrap_or(d.max_import_bytes),
            git_cache_bytes: cli
                .git_cache_bytes
                .or(file.git_cache_bytes)
                .unwrap_or(d.git_cache_bytes),
            caches: aether_core::CacheConfig {
                tree_bytes: cli
                    .tree_cache_bytes
                    .or(file.tree_cache_bytes)
                    .unwrap_or(d.caches.tree_bytes),
                manifest_bytes: cli
                    .manifest_cache_bytes
                    .or(file.manifest_cache_bytes)
                    .unwrap_or(d.caches.manifest_bytes),
                revision_bytes: cli
                    .revision_cache_bytes
                    .or(file.revision_cache_bytes)
                    .unwrap_or(d.caches.revision_bytes),
                session_bytes: cli
                    .sessions_cache_bytes
                    .or(file.sessions_cache_bytes)
                    .unwrap_or(d.caches.session_bytes),
            },
            handoff_timeout: cli
                .handoff_timeout_ms
                .or(file.handoff_timeout_ms)
                .map_or(d.handoff_timeout, Duration::from_millis),
            connections: Connections {
                header_read_timeout: cli
                    .header_read_timeout_secs
                    .or(file.header_read_timeout_secs)
                    .map_or(d.connections.header_read_timeout, Duration::from_secs),
                max_connections: cli
                    .max_connections
                    .or(file.max_connections)
                    .unwrap_or(d.connections.max_connections),
                body_idle_timeout: cli
                    .body_idle_timeout_secs
                    .or(file.body_idle_timeout_secs)
                    .map_or(d.connections.body_idle_timeout, Duration::from_secs),
                response_write_timeout: cli
                    .response_write_timeout_secs
                    .or(file.response_write_timeout_secs)
                    .map_or(d.connections.response_write_timeout, Duration::from_secs),
                idle_timeout: cli
                    .idle_timeout_secs
                    .or(file.idle_timeout_secs)
                    .map_or(d.connections.idle_timeout, Duration::from_secs),
                retry_after: retry_after.map_or(d.connections.retry_after, Duration::from_secs),
                shutdown_drain: cli
                    .shutdown_drain_secs
                    .or(file.shutdown_drain_secs)
                    .map_or(d.connections.shutdown_drain, Duration::from_secs),
            },
            admission: aether_service::AdmissionConfig {
                max_blocking_jobs: cli
                    .max_blocking_jobs
                    .or(file.max_blocking_jobs)
                    .unwrap_or(d.admission.max_blocking_jobs),
                retry_after: retry_after.map_or(d.admission.retry_after, Duration::from_secs),
            },
            quotas: aether_service::QuotaConfig {
                requests_per_second: cli
                    .token_requests_per_second
                    .or(file.token_requests_per_second)
                    .unwrap_or(d.quotas.requests_per_second),
                burst: cli.token_burst.or(file.token_burst).unwrap_or(d.quotas.burst),
                max_heavy_per_token: cli
                    .token_max_heavy
                    .or(file.token_max_heavy)
                    .unwrap_or(d.quotas.max_heavy_per_token),
            },
            metrics_auth: cli.metrics_auth.or(file.metrics_auth).unwrap_or(d.metrics_auth),
            gc: aether_service::GcConfig {
                grace: cli
                    .gc_grace_secs
                    .or(file.gc_grace_secs)
                    .map_or(d.gc.grace, Duration::from_secs),
                interval: match cli.gc_interval_secs.or(file.gc_interval_secs) {
                    Some(0) => None,
                    Some(s) => Some(Duration::from_secs(s)),
                    None => d.gc.interval,
                },
                pack_interval: match cli.pack_interval_secs.or(file.pack_interval_secs) {
                    Some(0) => None,
                    Some(s) => Some(Duration::from_secs(s)),
                    None => d.gc.pack_interval,
                },
                pack_loose_objects: cli
                    .pack_loose_objects
                    .or(file.pack_loose_objects)
                    .unwrap_or(d.gc.pack_loose_objects),
                events: aether_core::EventRetention {
                    max_age_ms: match cli.activity_max_age_days.or(file.activity_max_age_days) {
                        Some(0) => None,
                        Some(days) => Some(days.saturating_mul(86_400_000).min(i64::MAX as u64) as i64),
                        None => d.gc.events.max_age_ms,
                    },
                    max_per_session: match cli.activity_max_events.or(file.activity_max_events) {
                        Some(0) => None,
                        Some(n) => Some(n),
                        None => d.gc.events.max_per_session,
                    },
                },
                expiry: aether_core::ExpiryOptions {
                    checkpoints: aether_core::retention::CheckpointRetention {
                        keep_last: cli
                            .checkpoint_keep_last
                            .or(file.checkpoint_keep_last)
                            .filter(|n| *n > 0)
                            .or(d.gc.expiry.checkpoints.keep_last),
                        keep_days: cli
                            .checkpoint_keep_days
                            .or(file.checkpoint_keep_days)
                            .filter(|n| *n > 0)
                            .or(d.gc.expiry.checkpoints.keep_days),
                    },
                    archived_after: match cli.archived_expiry_days.or(file.archived_expiry_days) {
                        Some(0) => None,
                        Some(days) => Some(Duration::from_secs(days.saturating_mul(86_400))),
                        None => d.gc.expiry.archived_after,
                    },
                },
            },
            analytics: aether_service::AnalyticsConfig {
                minutes: cli
                    .analytics_minutes
                    .or(file.analytics_minutes)
                    .unwrap_or(d.analytics.minutes),
                hours: cli
                    .analytics_hours
                    .or(file.analytics_hours)
                    .unwrap_or(d.analytics.hours),
                days: cli.analytics_days.or(file.analytics_days).unwrap_or(d.analytics.days),
                max_sessions: cli
                    .analytics_max_sessions
                    .or(file.analytics_max_sessions)
                    .unwrap_or(d.analytics.max_sessions),
                max_paths: cli
                    .analytics_max_paths
                    .or(file.analytics_max_paths)
                    .unwrap_or(d.analytics.max_paths),
            },
            stale_mount: cli
                .stale_mount_secs
                .or(file.stale_mount_secs)
                .map_or(d.stale_mount, Duration::from_secs),
            shutdown_grace: cli
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .map_or(d.shutdown_grace, Duration::from_secs),
            malloc_arenas: cli.malloc_arenas.or(file.malloc_arenas).unwrap_or(d.malloc_arenas),
            stores: aether_core::StoreConfig {
                metadata: cli.metadata_store.or(file.metadata_store),
                objects: cli.object_store.or(file.object_store),
                chunks: cli.chunk_store.or(file.chunk_store),
            },
        };
        anyhow::ensure!(
            config.connections.max_connections > 0,
            "max_connections must be at least 1"
        );
        let c = &config.connections;
        for (name, d) in [
            ("header_read_timeout_secs", c.header_read_timeout),
            ("body_idle_timeout_secs", c.body_idle_timeout),
            ("response_write_timeout_secs", c.response_write_timeout),
            ("idle_timeout_secs", c.idle_timeout),
            ("retry_after_secs", c.retry_after),
        ] {
            anyhow::ensure!(!d.is_zero(), "{name} must be at least 1");
        }
        anyhow::ensure!(
            config.admission.max_blocking_jobs > 0,
            "max_blocking_jobs must be at least 1"
        );
        Ok(config)
    }

    /// The limits of sessions imported from git repositories.
    pub fn git_import(&self) -> aether_gitbridge::import::ImportConfig {
        aether_gitbridge::import::ImportConfig {
            fetch_timeout: std::time::Duration::from_secs(self.import_timeout_secs),
            max_bytes: self.max_import_bytes,
            ..Default::default()
        }
    }

    pub fn engine_config(&self) -> aether_core::EngineConfig {
        let mut c = aether_core::EngineConfig::new(&self.data_dir);
        c.large_file_threshold = self.large_file_threshold;
        c.loose_compression = self.loose_compression;
        c.git_cache_bytes = self.git_cache_bytes;
        c.caches = self.caches;
        c.limits.max_file_size = self.max_file_size;
        c.limits.max_import_files = self.max_import_files;
        c.limits.path.max_path_len = self.max_path_len;
        c.limits.max_tree_depth = self
            .max_tree_depth
            .unwrap_or_else(|| aether_core::Limits::tree_depth_for(c.limits.path));
        c.limits.max_walk_entries = self.max_walk_entries;
        c.stores = self.stores.clone();
        c
    }
}
