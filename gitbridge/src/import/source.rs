//! What may be imported: absolute local paths, `file://` and `http(s)://` URLs. Everything else
//! (ssh, git://, `ext::` and other remote helpers, relative paths) is refused before git runs.

use super::error::{ImportError, Result};

/// A validated source URL, as passed to git, and as shown to users (credentials removed).
#[derive(Debug, Clone)]
pub(crate) struct SourceUrl {
    pub url: String,
    pub display: String,
}

pub(crate) fn parse(raw: &str) -> Result<SourceUrl> {
    let url = raw.trim();
    let bad = |why: &str| ImportError::InvalidSource(format!("invalid git URL '{}': {why}", url.escape_debug()));
    if url.is_empty() {
        return Err(bad("empty"));
    }
    if url.len() > 4096 || url.chars().any(char::is_control) {
        return Err(bad("too long or contains control characters"));
    }
    let display = if let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) {
        let scheme_len = url.len() - rest.len();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(bad("no host"));
        }
        if url.chars().any(char::is_whitespace) {
            return Err(bad("contains whitespace"));
        }
        // Never echo credentials given in the URL.
        format!("{}{}{}", &url[..scheme_len], host, &rest[authority.len()..])
    } else if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad("a file:// URL needs an absolute path"));
        }
        url.to_owned()
    } else if url.starts_with('/') {
        url.to_owned()
    } else {
        return Err(bad(
            "only absolute local paths, file:// and http(s):// URLs can be imported",
        ));
    };
    Ok(SourceUrl {
        url: url.to_owned(),
        display,
    })
}

/// A ref as the request may name it: a branch or tag name, a full ref name, or a commit id.
pub(crate) fn validate_ref(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 256
        && !rev.starts_with('-')
        && !rev.contains("..")
        && !rev.contains("@{")
        && rev.bytes().all(|b| b.is_ascii_graphic() && !b"~^:?*[\\".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ImportError::InvalidSource(format!(
            "invalid ref '{}': name a branch, a tag, a full ref name or a commit id",
            rev.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_supported_kinds_and_hides_credentials() {
        assert_eq!(
            parse("/srv/repo.git").map(|u| u.url).ok().as_deref(),
            Some("/srv/repo.git")
        );
        assert!(parse("file:///srv/repo.git").is_ok());
        let u = parse("https://user:secret@example.com/a/b.git").ok();
        assert_eq!(u.map(|u| u.display).as_deref(), Some("https://example.com/a/b.git"));
    }

    #[test]
    fn refuses_other_transports_and_relative_paths() {
        for url in [
            "",
            "relative/path",
            "-uhack",
            "ext::sh -c touch% /tmp/pwned",
            "ssh://host/repo",
            "git://host/repo",
            "host:repo",
            "file://relative",
            "http://",
            "http://host/a b",
        ] {
            assert!(
                matches!(parse(url), Err(ImportError::InvalidSource(_))),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn refs_exclude_revision_syntax() {
        assert!(validate_ref("main").is_ok());
        assert!(validate_ref("refs/tags/v1.0").is_ok());
        for r in ["", "-n", "HEAD~1", "main^", "a..b", "x@{1}", ":/msg", "a b"] {
            assert!(validate_ref(r).is_err(), "{r} should be refused");
        }
    }
}
