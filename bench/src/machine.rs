//! What the numbers were measured on: CPUs, memory, kernel, OS, filesystem, git, and when.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date_utc: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub os: String,
    pub work_fs: String,
    pub git: String,
    /// 1, 5 and 15 minute load averages when the run started: other work on the machine shows here.
    pub load_at_start: String,
    /// The commit of this workspace at run time (what `cargo run` just built).
    pub source: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Stdout of a command, trimmed; empty when it cannot run.
fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The first three fields of /proc/loadavg.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn field<'a>(text: &'a str, key: &str, sep: char) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.split_once(sep)
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    })
}

impl Machine {
    pub fn detect(work_dir: Option<&Path>) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let os_release = read("/etc/os-release");
        let mem_total = field(&meminfo, "MemTotal", ':')
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        let dir = work_dir.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let df = output("df", &["--output=fstype", &dir.display().to_string()]);
        let work_fs = df.lines().last().unwrap_or("unknown").trim().to_owned();
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let commit = output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
        let dirty = !output("git", &["-C", repo, "status", "--porcelain"]).is_empty();
        let source = format!("{commit}{}", if dirty { " with uncommitted changes" } else { "" });
        Machine {
            date_utc: output("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
            cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(0),
            cpu_model: field(&cpuinfo, "model name", ':').unwrap_or("unknown").to_owned(),
            mem_total,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os: field(&os_release, "PRETTY_NAME", '=')
                .unwrap_or("unknown")
                .trim_matches('"')
                .to_owned(),
            work_fs: format!("{} ({})", dir.display(), work_fs),
            git: output("git", &["--version"]),
            load_at_start: load_average(),
            source,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "date:    {}\nmachine: {} CPUs ({}), {} memory\nkernel:  Linux {} ({})\nscratch: {}\ngit:     {}\nsource:  {}\nload:    {} at start",
            self.date_utc,
            self.cpus,
            self.cpu_model,
            self.mem_total,
            self.kernel,
            self.os,
            self.work_fs,
            self.git,
            self.source,
            self.load_at_start
        )
    }
}
