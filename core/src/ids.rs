//! Session ids: 26 characters of lowercase Crockford base32, time-ordered (48 bits of
//! milliseconds, then 80 random bits), so listing by id lists by creation time.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A new id, greater than every id generated before it by this process (ids made within
    /// one millisecond count up from the first one's random part).
    pub fn generate() -> Self {
        static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
        let millis = now_millis() as u128 & ((1 << 48) - 1);
        let mut random = [0u8; 10];
        fill_random(&mut random);
        let mut value = millis << 80;
        for (i, b) in random.iter().enumerate() {
            value |= u128::from(*b) << (8 * (9 - i));
        }
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if value <= *last {
            value = *last + 1;
        }
        *last = value;
        let mut out = String::with_capacity(26);
        for i in (0..26).rev() {
            out.push(ALPHABET[((value >> (5 * i)) & 31) as usize] as char);
        }
        SessionId(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.len() == 26 && s.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(SessionId(s.to_owned()))
        } else {
            Err(Error::not_found(format!("session '{}'", s.escape_debug())))
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness: fall back to the clock and a counter; ids stay unique per process.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = blake3::hash(
            &[
                now_millis().to_le_bytes(),
                COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes(),
            ]
            .concat(),
        );
        let n = buf.len();
        buf.copy_from_slice(&seed.as_bytes()[..n]);
    }
}

/// A short random string for temporary file names.
pub(crate) fn random_suffix() -> String {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    hex(&b)
}

/// `bytes` as lowercase hex pairs.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_ordered_and_parse_back() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert!(a < b, "ids made in the same millisecond still increase");
        assert_eq!(a.as_str().parse::<SessionId>().unwrap(), a);
        assert!("../../etc".parse::<SessionId>().is_err());
        assert!("ABCDEFGHJKMNPQRSTVWXYZ0123".parse::<SessionId>().is_err());
    }
}
