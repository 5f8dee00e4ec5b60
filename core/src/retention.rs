//! Which checkpoints of a session are kept: the last N, those younger than D days, or both (a
//! checkpoint either keeps is kept). A session without a policy of its own follows the server's.
//! What expires is dropped (its ref and record) by the next garbage collection, which then
//! reclaims what only it reached (see `expiry`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A retention policy of checkpoints (`None` in both: keep all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRetention {
    /// Keep the newest this many (1 or more).
    #[serde(default)]
    pub keep_last: Option<u64>,
    /// Keep those taken less than this many days ago.
    #[serde(default)]
    pub keep_days: Option<u64>,
}

impl CheckpointRetention {
    pub fn is_unset(&self) -> bool {
        self.keep_last.is_none() && self.keep_days.is_none()
    }

    /// Refuse a policy that would drop every checkpoint at once.
    pub fn validate(&self) -> Result<()> {
        if self.keep_last == Some(0) {
            return Err(Error::InvalidArgument(
                "keep_last must be 1 or more (leave it out to keep checkpoints by age only)".into(),
            ));
        }
        Ok(())
    }

    /// The numbers of the checkpoints this policy drops at `now_ms`, of `all` given as
    /// `(number, created_at)` (milliseconds since the epoch).
    pub fn expired(&self, all: &[(u64, i64)], now_ms: i64) -> Vec<u64> {
        if self.is_unset() {
            return Vec::new();
        }
        let mut newest_first = all.to_vec();
        newest_first.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
        newest_first
            .into_iter()
            .enumerate()
            .filter(|(rank, (_, created_at))| {
                let by_count = self.keep_last.is_some_and(|n| (*rank as u64) < n);
                let by_age = self
                    .keep_days
                    .is_some_and(|d| *created_at >= now_ms.saturating_sub((d as i64).saturating_mul(DAY_MS)));
                !(by_count || by_age)
            })
            .map(|(_, (number, _))| number)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(number: u64, created_at: i64) -> (u64, i64) {
        (number, created_at)
    }

    #[test]
    fn a_checkpoint_either_rule_keeps_is_kept() {
        let now = 100 * DAY_MS;
        // Checkpoint n was taken n days ago... numbered so the newest is 10.
        let all: Vec<_> = (1..=10).map(|n| cp(n, now - (10 - n as i64) * DAY_MS)).collect();
        let last3 = CheckpointRetention {
            keep_last: Some(3),
            keep_days: None,
        };
        assert_eq!(last3.expired(&all, now), [7, 6, 5, 4, 3, 2, 1]);
        let days2 = CheckpointRetention {
            keep_last: None,
            keep_days: Some(2),
        };
        // 10, 9 and 8 were taken 0, 1 and 2 days ago.
        assert_eq!(days2.expired(&all, now), [7, 6, 5, 4, 3, 2, 1]);
        let both = CheckpointRetention {
            keep_last: Some(5),
            keep_days: Some(1),
        };
        assert_eq!(both.expired(&all, now), [5, 4, 3, 2, 1]);
        assert!(CheckpointRetention::default().expired(&all, now).is_empty());
        assert!(
            CheckpointRetention {
                keep_last: Some(0),
                keep_days: None
            }
            .validate()
            .is_err()
        );
    }
}
