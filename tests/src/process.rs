//! External programs under a time limit (coreutils `timeout`: exit 124 means it hung), with
//! failures that show the command and both outputs.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `program` run under `timeout -k 10 LIMIT`.
pub fn timed(limit: Duration, program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.arg("-k")
        .arg("10")
        .arg(limit.as_secs().max(1).to_string())
        .arg(program)
        .stdin(Stdio::null());
    c
}

fn output(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}; 124 is a timeout)\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)]),
            String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4000)])
        ))
    }
}

/// Run; stdout, or an error with the command, its status and both outputs.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    output(cmd).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Run and expect success; stdout.
pub fn ok(cmd: &mut Command) -> String {
    run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Run and expect success; stdout as bytes.
pub fn ok_bytes(cmd: &mut Command) -> Vec<u8> {
    output(cmd).unwrap_or_else(|e| panic!("{e}")).stdout
}
