//! POSIX pax extended header records: `"<length> <key>=<value>\n"`, where the length counts the
//! whole record. Values are bytes (a name need not be UTF-8); keys repeat in GNU's sparse
//! format 0.0, so records stay a list in their order.

/// Records in the order they came.
#[derive(Debug, Clone, Default)]
pub struct Records(pub Vec<(String, Vec<u8>)>);

impl Records {
    /// Parse the data of an `x` or `g` entry. `Err` names what is malformed.
    pub fn parse(mut data: &[u8]) -> Result<Records, String> {
        let mut out = Vec::new();
        while !data.is_empty() {
            // Some writers pad the data with NULs.
            if data.iter().all(|&b| b == 0) {
                break;
            }
            let space = data.iter().position(|&b| b == b' ').ok_or("a record has no length")?;
            let len: usize = std::str::from_utf8(&data[..space])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or("a record's length is not a number")?;
            if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err("a record's length does not match its text".into());
            }
            let record = &data[space + 1..len - 1];
            let eq = record.iter().position(|&b| b == b'=').ok_or("a record has no '='")?;
            let key = std::str::from_utf8(&record[..eq])
                .map_err(|_| "a record's key is not UTF-8")?
                .to_owned();
            out.push((key, record[eq + 1..].to_vec()));
            data = &data[len..];
        }
        Ok(Records(out))
    }

    /// The last value of `key` (a later record overrides an earlier one).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }

    /// The last value of `key` as a decimal number; `Err` when present but not one.
    pub fn number(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("pax record {key} is not a number")),
        }
    }

    /// The last record of each key only (for global records, which accumulate).
    pub fn deduplicated(self) -> Records {
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<_> = self
            .0
            .into_iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect();
        kept.reverse();
        Records(kept)
    }

    /// Bytes held by keys and values.
    pub fn len_bytes(&self) -> u64 {
        self.0.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
    }

    /// `self`'s records after `base`'s, so `self` wins on [`Records::get`].
    pub fn over(&self, base: &Records) -> Records {
        Records(base.0.iter().chain(self.0.iter()).cloned().collect())
    }
}

/// One record, encoded: the length prefix counts itself.
pub fn encode(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_binary_values_and_self_counting_lengths() {
        let mut data = encode("path", b"a/\xff/b");
        data.extend(encode("linkpath", &[b'x'; 95]));
        data.extend(encode("GNU.sparse.offset", b"1"));
        data.extend(encode("GNU.sparse.offset", b"2"));
        assert_eq!(&encode("a", b"b")[..], b"6 a=b\n");
        // 98 bytes of text: a 2-digit length would make 100, so the length is 101.
        let long = encode("a", &[b'v'; 94]);
        assert_eq!(long.len(), 101);
        assert!(long.starts_with(b"101 a=v"));
        let r = Records::parse(&data).unwrap();
        assert_eq!(r.get("path"), Some(&b"a/\xff/b"[..]));
        assert_eq!(r.get("linkpath").unwrap().len(), 95);
        assert_eq!(r.number("GNU.sparse.offset").unwrap(), Some(2));
        assert_eq!(r.0.len(), 4);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [&b"5 a=b\n"[..], b"x a=b\n", b"7 ab\n\n\n", b"6 a=b", b"99 a=b\n"] {
            assert!(Records::parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(Records::parse(b"6 a=b\n\0\0\0").is_ok());
    }
}
