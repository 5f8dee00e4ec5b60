//! A closed-loop HTTP load generator: `connections` tasks, each with its own keep-alive
//! connection, send GETs back to back for a fixed time and check every response's status and
//! length. Requests per second is completed requests over the measured time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

pub struct Target {
    pub urls: Vec<String>,
    /// Sent as a bearer token when set.
    pub token: Option<String>,
    /// Every response must be 200 with exactly this many body bytes.
    pub body_len: usize,
}

pub struct Outcome {
    pub requests: u64,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Run the load for `duration`; any failed or wrong response fails the run.
pub async fn run(target: Arc<Target>, connections: usize, duration: Duration) -> Result<Outcome> {
    ensure!(!target.urls.is_empty(), "no URLs to load");
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for task in 0..connections {
        let target = target.clone();
        // One client per task with one idle connection: exactly `connections` keep-alive
        // connections, none shared.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .build()
            .context("building an HTTP client")?;
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let n = target.urls.len();
            let mut i = task * 7919;
            while Instant::now() < deadline {
                let mut req = client.get(&target.urls[i % n]);
                if let Some(t) = &target.token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await?;
                let status = resp.status();
                let body = resp.bytes().await?;
                ensure!(
                    status == reqwest::StatusCode::OK && body.len() == target.body_len,
                    "GET {} answered {status} with {} bytes",
                    target.urls[i % n],
                    body.len()
                );
                done += 1;
                i += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut requests = 0;
    for t in tasks {
        requests += t.await.context("joining a load task")??;
    }
    Ok(Outcome {
        requests,
        elapsed: start.elapsed(),
    })
}
