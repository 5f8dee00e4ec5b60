//! Per-token quotas: how many requests a second, and how many heavy operations (imports,
//! exports, git fetches and clones, checkpoints, restores, commits) at once, one scoped token may
//! have. Over either, a request is refused at once with [`Code::RateLimited`] (429 +
//! `Retry-After`; gRPC `RESOURCE_EXHAUSTED` with the same `aether-code`) and changes nothing.
//!
//! Admission (`admission`) protects the node from all callers together; this keeps one tenant
//! from taking what admission allows everyone. The admin token is the operator's and is never
//! limited. The request rate is a GCRA bucket per token (`governor`); heavy operations hold a
//! permit of the token's own semaphore for as long as their job.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Service;
use crate::admission::Job;
use crate::error::{Code, Result, ServiceError};
use crate::principal::{Identity, Principal};

/// The per-token limits; 0 turns a limit off.
#[derive(Clone, Debug)]
pub struct QuotaConfig {
    /// Requests a second one token may make, on average.
    pub requests_per_second: u32,
    /// Requests one token may make at once above that rate (the bucket's size; at least 1).
    pub burst: u32,
    /// Heavy operations one token may have running at once.
    pub max_heavy_per_token: usize,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            requests_per_second: 0,
            burst: 0,
            max_heavy_per_token: 8,
        }
    }
}

/// The quotas' state: a rate bucket and a heavy-operation semaphore per token seen.
pub(crate) struct Quotas {
    config: QuotaConfig,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    heavy: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Quotas {
    pub(crate) fn new(config: QuotaConfig) -> Quotas {
        let rate = NonZeroU32::new(config.requests_per_second).map(|rps| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(rps);
            RateLimiter::hashmap(Quota::per_second(rps).allow_burst(burst))
        });
        Quotas {
            config,
            rate,
            heavy: Mutex::new(HashMap::new()),
        }
    }

    /// Count one request of `token`; refused when over its rate.
    fn request(&self, token: &str) -> Result<()> {
        let Some(rate) = &self.rate else { return Ok(()) };
        rate.check_key(&token.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            rate_limited(
                format!(
                    "this token is over its {} requests a second",
                    self.config.requests_per_second
                ),
                wait,
            )
        })
    }

    /// A permit for one more heavy operation of `token`, or refused when it has the most.
    fn heavy(&self, token: &str, what: &str) -> Result<Option<OwnedSemaphorePermit>> {
        let max = self.config.max_heavy_per_token;
        if max == 0 {
            return Ok(None);
        }
        let sem = self
            .heavy
            .lock()
            .entry(token.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(max)))
            .clone();
        sem.try_acquire_owned().map(Some).map_err(|_| {
            rate_limited(
                format!("this token already runs {max} heavy operations (imports, exports, fetches, checkpoints); {what} refused"),
                Duration::from_secs(1),
            )
        })
    }
}

/// The error of a request over a quota.
fn rate_limited(message: String, wait: Duration) -> ServiceError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ServiceError::new(Code::RateLimited, format!("{message}; try again in {secs} s"))
        .with_detail("retry_after", secs.to_string())
}

/// The token whose quotas `p` counts against (`None` for the admin).
fn token_of(p: &Principal) -> Option<&str> {
    match &p.identity {
        Identity::Admin => None,
        Identity::Scoped(t) => Some(&t.id),
    }
}

impl Service {
    /// Count a request of `p` against its token's rate.
    pub(crate) fn count_request(&self, p: &Principal) -> Result<()> {
        match token_of(p) {
            Some(token) => self.inner.quotas.request(token),
            None => Ok(()),
        }
    }

    /// A job for a heavy operation: one of the token's heavy permits, then a job of the shared
    /// admission; refused (nothing taken) when either is at its limit.
    pub(crate) fn admit_heavy(&self, p: &Principal, what: &str) -> Result<Job> {
        let permit = match token_of(p) {
            Some(token) => self.inner.quotas.heavy(token, what)?,
            None => None,
        };
        Ok(self.admit(what)?.with_quota(permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_rate_is_refused_with_a_wait_and_others_are_not() {
        let q = Quotas::new(QuotaConfig {
            requests_per_second: 1,
            burst: 3,
            max_heavy_per_token: 0,
        });
        for _ in 0..3 {
            q.request("a").unwrap();
        }
        let e = q.request("a").unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert_eq!(e.details.get("retry_after").map(String::as_str), Some("1"));
        q.request("b").unwrap();
    }

    #[test]
    fn heavy_operations_over_the_cap_are_refused_and_freed_on_drop() {
        let q = Quotas::new(QuotaConfig {
            requests_per_second: 0,
            burst: 0,
            max_heavy_per_token: 2,
        });
        let one = q.heavy("a", "export").unwrap();
        let _two = q.heavy("a", "export").unwrap();
        assert!(one.is_some());
        let e = q.heavy("a", "export").unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert!(q.heavy("b", "export").is_ok(), "another token has its own");
        drop(one);
        assert!(q.heavy("a", "export").is_ok());
        // Off: nothing to hold.
        let off = Quotas::new(QuotaConfig::default_off());
        assert!(off.heavy("a", "x").unwrap().is_none());
        off.request("a").unwrap();
    }

    impl QuotaConfig {
        fn default_off() -> Self {
            QuotaConfig {
                requests_per_second: 0,
                burst: 0,
                max_heavy_per_token: 0,
            }
        }
    }
}
