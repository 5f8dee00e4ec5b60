//! The command line: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES;

const AFTER_HELP: &str = "Connection: --server / AETHER_URL / `server` in the config file \
(default http://127.0.0.1:7070); --token / AETHER_TOKEN / `token` in the config file; with \
neither and a server on this machine, the admin token in ./aether-data/admin.token (or \
$AETHER_DATA_DIR/admin.token). The config file is --config / AETHER_CONFIG, else \
$XDG_CONFIG_HOME/aether/config.toml (~/.config/aether/config.toml).";

#[derive(Debug, Parser)]
#[command(
    name = "aether",
    version,
    about = "AetherFS client: sessions, files, history and tokens over gRPC",
    after_long_help = format!("{AFTER_HELP}\n\n{EXIT_CODES}"),
)]
pub struct Cli {
    /// Server address [env: AETHER_URL] [default: http://127.0.0.1:7070].
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Bearer token [env: AETHER_TOKEN].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Configuration file [env: AETHER_CONFIG].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log level on stderr: error, warn, info, debug.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show, fork, label, archive and delete sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Read and change files of a session.
    #[command(subcommand)]
    Fs(FsCmd),
    /// Checkpoints: create, list, restore.
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// Commit the session's state on its branch.
    Commit(CommitArgs),
    /// Show the commits of a session, newest first.
    Log(LogArgs),
    /// Export a session as a tar or tar.gz archive.
    Export(ExportArgs),
    /// Create a session from a tar or tar.gz archive.
    Import(ImportArgs),
    /// Manage scoped access tokens (admin).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Check the server, the token, FUSE and the cache directory.
    Doctor,
    /// Mount a session as a local directory (FUSE); returns once the mount is ready.
    Mount(MountCommand),
    /// Unmount a directory mounted with 'aether mount', after its pending changes are sent.
    Unmount(UnmountArgs),
    /// The local content cache shared by all mounts.
    #[command(subcommand)]
    Cache(CacheCmd),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Server-wide usage: what all sessions hold against the bytes on disk (admin).
    Usage,
    /// A session's activity: who changed what, where, through which surface.
    ///
    /// Oldest first; `--follow` keeps printing new changes as they happen.
    Activity(ActivityArgs),
    /// The busiest sessions, live (admin).
    ///
    /// Operations, errors and bytes per session, latency per operation and the busiest paths
    /// over the last --window, a frame every --interval seconds; --once prints one frame.
    Top(TopArgs),
    /// Git's fsmonitor hook (protocol 2) for a repository in a mount:
    /// `git config core.fsmonitor "aether fsmonitor"`.
    #[command(hide = true)]
    Fsmonitor(FsmonitorArgs),
}

#[derive(Debug, Args)]
pub struct ActivityArgs {
    /// Session id.
    pub session: String,
    /// Keep printing changes as they happen (until interrupted).
    #[arg(long)]
    pub follow: bool,
    /// Only changes at or after this time: milliseconds since the Unix epoch, or an age such
    /// as `90s`, `15m`, `2h`, `7d`.
    #[arg(long)]
    pub since: Option<String>,
    /// Only what this principal did (`admin`, `token:<id>`, `server`).
    #[arg(long)]
    pub principal: Option<String>,
    /// Only what came through this surface (`rest`, `grpc`, `git`, `mount`, `server`).
    #[arg(long)]
    pub surface: Option<String>,
    /// Only these operations (`write`, `delete`, `rename`, ...); repeat or comma-separate.
    #[arg(long = "operation")]
    pub operations: Vec<String>,
    /// Only changes at this path or below it.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Stop after this many changes.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between frames.
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
    /// Print one frame and exit.
    #[arg(long)]
    pub once: bool,
    /// The traffic of this last stretch of time: `90s`, `15m`, `2h`, `7d`.
    #[arg(long, default_value = "5m")]
    pub window: String,
    /// Sessions (and paths) shown, 1 to 100.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub top: u32,
}

#[derive(Debug, Args)]
pub struct FsmonitorArgs {
    /// The hook protocol version git speaks (2).
    pub version: u32,
    /// The token of git's last answer (absent or anything else: everything changed).
    #[arg(allow_hyphen_values = true, value_name = "TOKEN")]
    pub last_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct LabelsTags {
    /// A label KEY=VALUE (repeat for several).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// A tag (repeat for several).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// Create a session: empty, or from a directory, an archive, a git repository or a session.
    Create(CreateArgs),
    /// List sessions.
    List(ListArgs),
    /// Show one session.
    Show(IdArg),
    /// Fork a session in constant time.
    Fork(ForkArgs),
    /// Make a session read-only for good.
    Archive(IdArg),
    /// Delete a session.
    Delete(IdArg),
    /// Set or remove labels.
    Label(LabelArgs),
    /// Replace, add or remove tags.
    Tag(TagArgs),
    /// Print a session's events, then new ones as they happen (until interrupted).
    Watch(WatchArgs),
    /// A session's health: `ok`, or `degraded` with the reasons.
    ///
    /// Its attached mounts and their oldest pending change, its import, its last error.
    Health(IdArg),
    /// What a session holds, and what of it is its own (what its quota counts).
    Usage(IdArg),
    /// Set a session's quota on the bytes and files it holds of its own (admin).
    Quota(QuotaCmdArgs),
    /// Set which of a session's checkpoints are kept; the others expire before the next
    /// garbage collection.
    Retention(RetentionCmdArgs),
}

/// Which checkpoints are kept: the newest N, those of the last D days, or both (either keeps
/// one). Without either, the server's policy.
#[derive(Debug, Args, Default)]
pub struct RetentionArgs {
    /// Keep the newest N checkpoints.
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<u64>,
    /// Keep the checkpoints of the last D days.
    #[arg(long, value_name = "D")]
    pub keep_checkpoint_days: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RetentionCmdArgs {
    /// Session id.
    pub session: String,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Follow the server's policy again.
    #[arg(long, conflicts_with_all = ["keep_checkpoints", "keep_checkpoint_days"])]
    pub server_default: bool,
}

/// Limits on what a session holds of its own (what it does not share with the session it was
/// forked from). A fork without them takes its parent's.
#[derive(Debug, Args, Default)]
pub struct QuotaArgs {
    /// Most bytes of files of its own (512, 64K, 256M, 10G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub quota_bytes: Option<u64>,
    /// Most files and symbolic links of its own.
    #[arg(long, value_name = "N")]
    pub quota_files: Option<u64>,
}

#[derive(Debug, Args)]
pub struct QuotaCmdArgs {
    /// Session id.
    pub session: String,
    #[command(flatten)]
    pub quota: QuotaArgs,
    /// Remove every limit.
    #[arg(long, conflicts_with_all = ["quota_bytes", "quota_files"])]
    pub unlimited: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Session id.
    pub session: String,
    /// Start after this event sequence number (0: from the beginning).
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
#[group(id = "source", multiple = false)]
pub struct SourceArgs {
    /// Upload this local directory.
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Upload this tar or tar.gz archive (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub from_tar: Option<PathBuf>,
    /// Import this git repository.
    #[arg(long, value_name = "URL")]
    pub from_git: Option<String>,
    /// Start from this session's state.
    #[arg(long, value_name = "ID")]
    pub from_session: Option<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// With --from-git: the branch, tag or commit to import.
    #[arg(long = "ref", value_name = "REF", requires = "from_git")]
    pub git_ref: Option<String>,
    /// With --from-session: a revision (checkpoints/N, a branch, a commit id).
    #[arg(long, value_name = "REV", requires = "from_session")]
    pub at: Option<String>,
    /// The session's branch name.
    #[arg(long)]
    pub branch: Option<String>,
    #[command(flatten)]
    pub meta: LabelsTags,
    #[command(flatten)]
    pub quota: QuotaArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sessions with this label KEY=VALUE (repeat to require several).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Only `active` or `archived` sessions.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many sessions (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Session id.
    pub session: String,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    /// Session id.
    pub session: String,
    /// Fork this revision instead of the current state.
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
    #[command(flatten)]
    pub meta: LabelsTags,
    #[command(flatten)]
    pub quota: QuotaArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Session id.
    pub session: String,
    /// Labels to set, KEY=VALUE.
    #[arg(value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Remove this label (repeat for several).
    #[arg(long, value_name = "KEY")]
    pub remove: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Session id.
    pub session: String,
    /// Replace the tags with these.
    #[arg(value_name = "TAG", conflicts_with_all = ["add", "remove"])]
    pub tags: Vec<String>,
    /// Add this tag (repeat for several).
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove this tag (repeat for several).
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum FsCmd {
    /// List a directory.
    Ls(LsArgs),
    /// Print a file.
    Cat(CatArgs),
    /// Upload a local file (`-` for standard input).
    Put(PutArgs),
    /// Download a file (to standard output with `-`).
    Get(GetArgs),
    /// Delete a file or directory.
    Rm(RmArgs),
    /// Rename or move.
    Mv(MvArgs),
    /// Make a directory.
    Mkdir(MkdirArgs),
    /// Make a symbolic link.
    Ln(LnArgs),
    /// Show a path's metadata (mode, size, git blob id, chunks).
    Stat(StatArgs),
    /// Change permission bits.
    Chmod(ChmodArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    pub session: String,
    /// Directory (the root when absent).
    #[arg(default_value = "")]
    pub path: String,
    /// The whole subtree.
    #[arg(short, long)]
    pub recursive: bool,
    /// Read a revision (checkpoints/N, a branch, a commit id).
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    pub session: String,
    pub path: String,
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub session: String,
    /// Local file, or `-` for standard input.
    pub local: PathBuf,
    /// Path in the session.
    pub path: String,
    /// Permission bits of a new file, octal (default 644).
    #[arg(long)]
    pub mode: Option<String>,
    /// Fail instead of creating missing parent directories.
    #[arg(long)]
    pub no_parents: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub session: String,
    /// Path in the session.
    pub path: String,
    /// Local file (`-` for standard output); the file's name when absent.
    pub local: Option<PathBuf>,
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
    /// Continue an interrupted download: keep the local bytes, fetch the rest.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub session: String,
    pub path: String,
    /// Delete a directory with everything in it.
    #[arg(short, long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct MvArgs {
    pub session: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Args)]
pub struct MkdirArgs {
    pub session: String,
    pub path: String,
    /// Create missing parents; no error if it exists.
    #[arg(short, long)]
    pub parents: bool,
}

#[derive(Debug, Args)]
pub struct LnArgs {
    pub session: String,
    /// What the link points to.
    pub target: String,
    /// The link's path.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    pub session: String,
    #[arg(default_value = "")]
    pub path: String,
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct ChmodArgs {
    pub session: String,
    /// Octal permission bits, e.g. 755.
    pub mode: String,
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCmd {
    /// Freeze the current state into a checkpoint (a git commit and ref).
    Create(CheckpointCreateArgs),
    /// List a session's checkpoints.
    List(IdArg),
    /// Set the session to a revision; the state it discards is checkpointed first.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct CheckpointCreateArgs {
    pub session: String,
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    pub session: String,
    /// checkpoints/N, a branch or a commit id.
    pub rev: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    pub session: String,
    #[arg(short, long)]
    pub message: String,
    /// "Name <email>".
    #[arg(long)]
    pub author: Option<String>,
    /// Commit on this branch instead of the session's.
    #[arg(long)]
    pub branch: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    pub session: String,
    /// Start from this revision (default: the session's branch).
    #[arg(long)]
    pub rev: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub session: String,
    /// Output file (`-` for standard output); gzip when it ends in .tar.gz or .tgz.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Export a revision.
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
    /// Compress with gzip whatever the file name.
    #[arg(long)]
    pub gzip: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A tar or tar.gz archive (`-` for standard input).
    pub archive: PathBuf,
    #[command(flatten)]
    pub meta: LabelsTags,
    #[command(flatten)]
    pub quota: QuotaArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token for some sessions; its secret is shown once.
    Create(TokenCreateArgs),
    /// List tokens.
    List,
    /// Revoke a token.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A session the token may use (repeat for several).
    #[arg(long = "session", value_name = "ID", required = true)]
    pub sessions: Vec<String>,
    /// `read` or `write`.
    #[arg(long, default_value = "read")]
    pub access: String,
    #[arg(long, default_value = "")]
    pub description: String,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Token id (not the secret).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `aether mount SESSION DIR`, or `aether mount status DIR` (session ids never spell a
/// subcommand's name, so the two cannot be confused).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MountCommand {
    #[command(subcommand)]
    pub command: Option<MountCmd>,
    #[command(flatten)]
    pub mount: Option<MountArgs>,
}

#[derive(Debug, Subcommand)]
pub enum MountCmd {
    /// What the server refused from a mount, and where the bytes are kept.
    ///
    /// Each change the server refused from the mount on DIR (or from every mount that used the
    /// cache directory), while it runs or after it is gone: when, the path, the server's reason
    /// and errno, and where lost+found keeps the bytes of an upload. Exits 1 while any refusal
    /// stands (no later upload of the same file through the same mount was accepted).
    Status(MountStatusArgs),
}

#[derive(Debug, Args)]
pub struct MountStatusArgs {
    /// The mount point [default: every mount that used the cache directory].
    pub dir: Option<PathBuf>,
    /// The cache directory the mount was started with.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// The session to mount.
    pub session: String,
    /// An existing directory to mount on.
    pub dir: PathBuf,
    /// Stay in the foreground until unmounted (Ctrl-C unmounts).
    #[arg(short, long)]
    pub foreground: bool,
    /// Read-only mount.
    #[arg(long)]
    pub ro: bool,
    /// Mount a checkpoint or commit, read-only (`checkpoints/N`, a branch, a commit id).
    #[arg(long, value_name = "REV")]
    pub at: Option<String>,
    /// Memory for cached file content (e.g. 256M, 1G).
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub cache_mem: u64,
    /// Directory of the on-disk content cache [default: $XDG_CACHE_HOME/aether or ~/.cache/aether].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the on-disk content cache.
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Write the mount's log to this file (background mounts log nowhere otherwise).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How long fsync and close wait for an unreachable server before failing with EIO.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub retry_secs: u64,
    /// Threads serving kernel requests [default: one per CPU, at most 8].
    #[arg(long, env = "AETHER_MOUNT_THREADS")]
    pub threads: Option<usize>,
    /// While requests come, ask the kernel to keep idle CPUs polling instead of halting
    /// (PM QoS, /dev/cpu_dma_latency; needs root): each request wakes a CPU twice.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub cpu_latency: bool,
    /// Once a directory the mount changed is quiet, list it (and stat files written in place)
    /// through the mount, so the kernel caches fresh attributes and listings again: the next
    /// stat or listing by a tool (git status after a checkout) costs no request.
    #[arg(
        long,
        env = "AETHER_WARM_KERNEL_CACHE",
        value_name = "on|off",
        default_value = "on",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set
    )]
    pub warm_kernel_cache: bool,
    /// Let every user of this machine use the mount (FUSE allow_other): the kernel checks each
    /// access against the mode, owner and group of the files (default_permissions). Users
    /// other than root need `user_allow_other` in /etc/fuse.conf.
    #[arg(long)]
    pub allow_other: bool,
}

#[derive(Debug, Args)]
pub struct UnmountArgs {
    /// The mounted directory.
    pub dir: PathBuf,
    /// The cache directory the mount was started with.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCmd {
    /// Size and block count of the on-disk content cache.
    Stats {
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Remove every cached block (mounts refetch what they need).
    Clear {
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

/// `on` or `off`, for switches that default to on (a bare `bool` would be a flag that cannot be
/// turned off).
pub fn parse_on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("expected on or off, got {raw:?}")),
    }
}

/// `512`, `64K`, `256M`, `10G` (powers of 1024).
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let t = raw.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a size like 256M or 10G"))?;
    let shift = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("'{raw}': unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("'{raw}' is too large"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command};

    fn mount_args(extra: &[&str]) -> Result<super::MountArgs, clap::Error> {
        let argv = ["aether", "mount", "SESSION", "/mnt/x"].iter().chain(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Mount(super::MountCommand {
                command: None,
                mount: Some(args),
            }) => Ok(args),
            other => panic!("not parsed as a mount: {other:?}"),
        }
    }

    #[test]
    fn mount_status_is_a_subcommand_and_a_mount_still_needs_session_and_dir() {
        let parsed = Cli::try_parse_from(["aether", "mount", "status", "/mnt/x", "--cache-dir", "/c"]).unwrap();
        match parsed.command {
            Command::Mount(super::MountCommand {
                command: Some(super::MountCmd::Status(s)),
                mount: None,
            }) => {
                assert_eq!(s.dir.as_deref(), Some(std::path::Path::new("/mnt/x")));
                assert_eq!(s.cache_dir.as_deref(), Some(std::path::Path::new("/c")));
            }
            other => panic!("not parsed as mount status: {other:?}"),
        }
        assert!(Cli::try_parse_from(["aether", "mount", "status"]).is_ok());
        assert!(Cli::try_parse_from(["aether", "mount"]).is_err());
        assert!(Cli::try_parse_from(["aether", "mount", "SESSION"]).is_err());
        let m = mount_args(&[]).unwrap();
        assert_eq!((m.session.as_str(), m.dir.to_str()), ("SESSION", Some("/mnt/x")));
    }

    #[test]
    fn on_off_switches_default_on_and_can_be_turned_off() {
        let default = mount_args(&[]).unwrap();
        assert!(default.cpu_latency && default.warm_kernel_cache);
        let off = mount_args(&["--cpu-latency", "off", "--warm-kernel-cache", "off"]).unwrap();
        assert!(!off.cpu_latency && !off.warm_kernel_cache);
        let on = mount_args(&["--cpu-latency=on", "--warm-kernel-cache=on"]).unwrap();
        assert!(on.cpu_latency && on.warm_kernel_cache);
        let bad = mount_args(&["--cpu-latency", "yes"]).unwrap_err();
        assert!(bad.to_string().contains("expected on or off"), "{bad}");
    }
}
