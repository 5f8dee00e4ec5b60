//! Session paths: the only way a path from outside reaches the engine. A [`SessionPath`] is
//! normalized and can never name anything outside its session.

use std::fmt;

use crate::error::{Error, Result};

/// Limits applied when parsing paths.
#[derive(Debug, Clone, Copy)]
pub struct PathLimits {
    pub max_path_len: usize,
    pub max_name_len: usize,
}

impl Default for PathLimits {
    fn default() -> Self {
        PathLimits {
            max_path_len: 4096,
            max_name_len: 255,
        }
    }
}

/// A normalized relative path inside a session: components joined by `/`, no `.`/`..`, no empty
/// components, no NUL. The root is the empty path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SessionPath(String);

impl SessionPath {
    pub fn root() -> Self {
        SessionPath(String::new())
    }

    /// Parse a path given by a client. A single leading `/` and trailing `/` are accepted
    /// (`/a/b/` is `a/b`); `.` components are dropped. Everything else that is not a plain name
    /// is rejected rather than repaired.
    pub fn parse(raw: &str, limits: PathLimits) -> Result<Self> {
        let invalid = |reason| Error::InvalidPath {
            path: raw.escape_debug().to_string(),
            reason,
        };
        if raw.len() > limits.max_path_len {
            return Err(Error::TooLarge {
                what: "path length".into(),
                limit: limits.max_path_len as u64,
            });
        }
        if raw.contains('\0') {
            return Err(invalid("path contains a NUL byte"));
        }
        if raw.starts_with("//") {
            return Err(invalid("path must be relative to the session root"));
        }
        let trimmed = raw.strip_prefix('/').unwrap_or(raw);
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let mut out = String::with_capacity(trimmed.len());
        if trimmed.is_empty() {
            return Ok(SessionPath(out));
        }
        for comp in trimmed.split('/') {
            match comp {
                "" => return Err(invalid("path has an empty component")),
                "." => continue,
                ".." => return Err(invalid("'..' is not allowed")),
                c if c.len() > limits.max_name_len => {
                    return Err(Error::TooLarge {
                        what: "file name length".into(),
                        limit: limits.max_name_len as u64,
                    });
                }
                c => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(c);
                }
            }
        }
        Ok(SessionPath(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    pub fn parent(&self) -> Option<SessionPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => SessionPath(self.0[..i].to_owned()),
            None => SessionPath::root(),
        })
    }

    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// `self/name`; `name` must be a single valid component (the caller got it from a tree).
    pub fn join(&self, name: &str) -> SessionPath {
        if self.is_root() {
            SessionPath(name.to_owned())
        } else {
            SessionPath(format!("{}/{name}", self.0))
        }
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SessionPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// Re-root `self` (which lies below `from`) under `to`.
    pub fn rebase(&self, from: &SessionPath, to: &SessionPath) -> SessionPath {
        let rest = if from.is_root() {
            self.0.as_str()
        } else {
            self.0[from.0.len()..].trim_start_matches('/')
        };
        if rest.is_empty() { to.clone() } else { to.join(rest) }
    }
}

impl fmt::Display for SessionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<SessionPath> {
        SessionPath::parse(s, PathLimits::default())
    }

    #[test]
    fn normalizes_slashes_and_dots() {
        assert_eq!(p("/a/./b/").unwrap().as_str(), "a/b");
        assert_eq!(p("").unwrap(), SessionPath::root());
        assert_eq!(p("/").unwrap(), SessionPath::root());
        assert_eq!(p("./x").unwrap().as_str(), "x");
    }

    #[test]
    fn rejects_escapes_and_junk() {
        for bad in ["../x", "a/../../b", "a//b", "//etc/passwd", "a\0b"] {
            let err = p(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidPath, "{bad:?}");
        }
        assert_eq!(p(&"n".repeat(256)).unwrap_err().kind(), crate::ErrorKind::TooLarge);
        assert_eq!(p(&"n/".repeat(3000)).unwrap_err().kind(), crate::ErrorKind::TooLarge);
    }

    #[test]
    fn a_nested_repository_is_an_ordinary_path() {
        // Trees spell these names escaped (see `tree_names`); sessions take them as they are.
        assert_eq!(p(".git/config").unwrap().as_str(), ".git/config");
        assert_eq!(p("a/.GIT/x").unwrap().name(), "x");
    }

    #[test]
    fn relations() {
        let a = p("a").unwrap();
        let ab = p("a/b").unwrap();
        let abc = p("a/bc").unwrap();
        assert!(ab.starts_with(&a));
        assert!(!p("ab").unwrap().starts_with(&a));
        assert!(abc.starts_with(&SessionPath::root()));
        assert_eq!(ab.parent().unwrap(), a);
        assert_eq!(a.parent().unwrap(), SessionPath::root());
        assert_eq!(ab.rebase(&a, &p("z/y").unwrap()).as_str(), "z/y/b");
        assert_eq!(ab.name(), "b");
    }
}
