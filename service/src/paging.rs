//! Pages of a listing: a cursor (`after`, the last item of the previous page) and a limit, with
//! one default per listing and one maximum for all, decided here for every surface.

use crate::error::{Result, ServiceError};

/// Most items one page holds.
pub const MAX_LIMIT: u64 = 1000;
/// Sessions per page when the caller names no limit.
pub const DEFAULT_SESSIONS: usize = 100;
/// Commits per page of a log when the caller names no limit.
pub const DEFAULT_COMMITS: usize = 50;
/// Changes of a commit per page when the caller names no limit.
pub const DEFAULT_CHANGES: usize = 1000;

/// What a caller asks of a paged listing. `limit: None` means the listing's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<u64>,
    /// The cursor a previous page returned as `next`; `None` starts at the beginning. Any other
    /// value, empty included, must be a cursor of that listing.
    pub after: Option<String>,
}

impl PageRequest {
    /// The limit to use: the default when none is named, else 1 to [`MAX_LIMIT`].
    pub fn limit(&self, default: usize) -> Result<usize> {
        match self.limit {
            None => Ok(default),
            Some(l @ 1..=MAX_LIMIT) => Ok(l as usize),
            Some(l) => Err(ServiceError::bad_request(format!(
                "limit must be from 1 to {MAX_LIMIT}, got {l}"
            ))),
        }
    }

    /// The cursor, if one was given.
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }
}

/// One page of items; `next` is the cursor of the following page, `None` on the last one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items`, asked for with `limit`: a full page may have a successor, whose
    /// cursor is the last item's `cursor`.
    pub(crate) fn of(items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
        let next = if items.len() == limit {
            items.last().map(cursor)
        } else {
            None
        };
        Page { items, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    #[test]
    fn limits_default_and_stay_within_the_maximum() {
        let req = |limit| PageRequest { limit, after: None };
        assert_eq!(req(None).limit(DEFAULT_SESSIONS), Ok(100));
        assert_eq!(req(None).limit(DEFAULT_COMMITS), Ok(50));
        assert_eq!(req(Some(1)).limit(50), Ok(1));
        assert_eq!(req(Some(MAX_LIMIT)).limit(50), Ok(1000));
        for bad in [0, MAX_LIMIT + 1, u64::MAX] {
            let e = req(Some(bad)).limit(50).unwrap_err();
            assert_eq!(e.code, Code::BadRequest, "{bad}");
            assert!(e.message.contains("1 to 1000"), "{}", e.message);
        }
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        let full = Page::of(vec![1, 2, 3], 3, |i| i.to_string());
        assert_eq!(full.next.as_deref(), Some("3"));
        let short = Page::of(vec![1, 2], 3, |i| i.to_string());
        assert_eq!(short.next, None);
        let empty = Page::of(Vec::<u8>::new(), 3, |i| i.to_string());
        assert_eq!(empty.next, None);
        let blank = PageRequest {
            limit: None,
            after: Some(String::new()),
        };
        assert_eq!(blank.after(), Some(""), "an empty cursor is a cursor, and no valid one");
    }
}
