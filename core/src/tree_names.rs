//! How a session's file names are spelled inside git trees.
//!
//! A session may hold a `.git` directory: an agent runs `git init` in its workspace, or a
//! mount holds a clone. Git itself refuses such a tree entry: `git checkout` and `git clone`
//! reject any path component that git would take for its own directory (`.git` in any case,
//! and its NTFS spellings `.git.`, `.git ` and `git~1`), so a session tree holding one could
//! not be cloned. The session's name is therefore escaped in trees by appending one `~`, and
//! every name already of the form *reserved name + `~`s* gets one more `~`, which keeps the
//! mapping one-to-one:
//!
//! | session | tree |
//! |---|---|
//! | `.git` | `.git~` |
//! | `.git~` | `.git~~` |
//! | `.GIT` | `.GIT~` |
//! | `.gitignore` | `.gitignore` |
//!
//! Every other name is stored as it is. The escape applies where names cross between sessions
//! and git objects: [`crate::odb::Odb::read_tree`] unescapes, [`crate::odb::Odb::edit_tree`]
//! escapes, so every tree a session reads must be in this spelling. Trees from elsewhere (an
//! imported repository, where a file may well be named `.git~`) are converted first
//! ([`crate::foreign_trees`]); commits the engine writes say that their trees need no
//! conversion ([`COMMIT_HEADER`]). A clone of a session shows a nested repository as
//! `.git~/`, a directory git treats as plain files, and a file the session names `.git~` as
//! `.git~~`.

use std::borrow::Cow;

/// The header the engine puts in every commit it writes: its tree spells names this way. A
/// commit without it came from elsewhere and its trees spell every name as itself (see
/// [`crate::foreign_trees`]).
pub const COMMIT_HEADER: &str = "aether-names";
/// The value of [`COMMIT_HEADER`].
pub const COMMIT_HEADER_VALUE: &str = "escaped";

/// The session's spelling of `name` as a git tree entry.
pub fn to_tree(name: &str) -> Cow<'_, str> {
    if is_reserved_with_tildes(name.as_bytes()) {
        Cow::Owned(format!("{name}~"))
    } else {
        Cow::Borrowed(name)
    }
}

/// [`to_tree`] on a name as bytes (a name in a foreign tree need not be UTF-8; such a name is
/// never reserved).
pub fn to_tree_bytes(name: &[u8]) -> Cow<'_, [u8]> {
    if is_reserved_with_tildes(name) {
        Cow::Owned([name, b"~"].concat())
    } else {
        Cow::Borrowed(name)
    }
}

/// The session name that the git tree entry `name` stands for.
pub fn from_tree(name: &str) -> &str {
    match name.strip_suffix('~') {
        Some(stripped) if is_reserved_with_tildes(name.as_bytes()) => stripped,
        _ => name,
    }
}

/// Whether `name` is a name git reserves for its own directory followed by zero or more `~`.
fn is_reserved_with_tildes(name: &[u8]) -> bool {
    let end = name.iter().rposition(|&b| b != b'~').map_or(0, |i| i + 1);
    is_reserved(&name[..end])
}

/// `.git` or `git~1` (ASCII case-insensitive), followed only by dots and spaces, which Windows
/// drops from names and git's path checks therefore ignore.
fn is_reserved(b: &[u8]) -> bool {
    let rest = if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b".git") {
        &b[4..]
    } else if b.len() >= 5 && b[..5].eq_ignore_ascii_case(b"git~1") {
        &b[5..]
    } else {
        return false;
    };
    rest.iter().all(|&c| c == b'.' || c == b' ')
}

#[cfg(test)]
mod tests {
    use super::{from_tree, to_tree, to_tree_bytes};

    #[test]
    fn reserved_names_gain_one_tilde_and_lose_it_back() {
        for (session, tree) in [
            (".git", ".git~"),
            (".GiT", ".GiT~"),
            (".git~", ".git~~"),
            (".git~~", ".git~~~"),
            (".git.", ".git.~"),
            (".git ", ".git ~"),
            ("git~1", "git~1~"),
            ("GIT~1~", "GIT~1~~"),
        ] {
            assert_eq!(to_tree(session), tree, "{session:?}");
            assert_eq!(from_tree(tree), session, "{tree:?}");
        }
    }

    #[test]
    fn other_names_are_untouched() {
        for name in [
            ".gitignore",
            ".gitmodules",
            "git",
            ".gi",
            "a~",
            "~",
            ".git~x",
            "x.git",
            "git~2",
            "",
        ] {
            assert_eq!(to_tree(name), name, "{name:?}");
            assert_eq!(from_tree(name), name, "{name:?}");
        }
    }

    #[test]
    fn the_mapping_is_one_to_one_both_ways() {
        let names = [
            ".git", ".git~", ".git~~", ".GIT", "git~1", "git~1~", ".git.", "a", ".gitx", "~",
        ];
        let mut seen = std::collections::HashSet::new();
        for n in names {
            let t = to_tree(n).into_owned();
            assert!(seen.insert(t.clone()), "two names map to {t:?}");
            assert_eq!(from_tree(&t), n);
        }
        // Every tree name git itself can hold decodes to a session name that encodes back to
        // it. (A bare `.git` entry, which git never writes, reads as `.git` and is written back
        // escaped.)
        for t in names
            .iter()
            .filter(|t| !matches!(**t, ".git" | ".GIT" | "git~1" | ".git."))
        {
            assert_eq!(to_tree(from_tree(t)), *t, "{t:?}");
        }
        assert_eq!(from_tree(".git"), ".git");
    }

    #[test]
    fn names_as_bytes_escape_like_names_as_text() {
        for name in [".git", ".git~", "GIT~1~", ".gitignore", "a~", "~"] {
            assert_eq!(
                to_tree_bytes(name.as_bytes()).as_ref(),
                to_tree(name).as_bytes(),
                "{name:?}"
            );
        }
        // A name that is not UTF-8 is never reserved.
        assert_eq!(to_tree_bytes(b".git\xff~").as_ref(), b".git\xff~");
    }
}
