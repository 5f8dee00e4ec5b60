//! Schemathesis (PyPI) against a real aetherd: generated requests, positive and negative, for
//! every operation of `/v1/openapi.json`, with every check it has (its default; `--checks all` would override the per-operation
//! exceptions of `schemathesis.toml`). Zero server errors and zero
//! conformance failures. Missing schemathesis is a skip locally and a failure with `CI=true`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Aetherd;

/// Longest the run may take before it counts as a failure (it takes a minute or two).
const LIMIT: Duration = Duration::from_secs(420);

#[test]
fn schemathesis_finds_no_server_errors_and_no_conformance_failures() {
    if !aether_test_support::prereq::schemathesis("schemathesis_finds_no_server_errors_and_no_conformance_failures") {
        return;
    }
    let d = Aetherd::start(&[]);
    let report = tempfile::tempdir().unwrap();
    let mut child = Command::new("schemathesis")
        .arg("--config-file")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/v1/openapi.json", d.base()))
        .args(["--url", &d.base()])
        .args(["--header", &format!("Authorization: Bearer {}", d.admin)])
        .args(["--max-examples", "25", "--seed", "23", "--workers", "1"])
        .args(["--request-timeout", "30"])
        .arg("--report-dir")
        .arg(report.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .current_dir(report.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain both pipes while it runs, or a full pipe stops it.
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    })
    .collect();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("schemathesis took longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut texts = readers.into_iter().map(|r| r.join().unwrap());
    let (stdout, stderr) = (texts.next().unwrap(), texts.next().unwrap());
    assert!(
        status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}\nserver log:\n{}",
        d.log()
    );
}
