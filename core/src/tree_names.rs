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
//! escapes. A bare reserved entry in a foreign tree (git never writes one) reads under its own
//! name and is written back escaped. A clone of a session therefore shows a nested repository as `.git~/`, a directory
//! git treats as plain files.

use std::borrow::Cow;

/// The session's spelling of `name` as a git tree entry.
pub fn to_tree(name: &str) -> Cow<'_, str> {
    if is_reserved_with_tildes(name) {
        Cow::Owned(format!("{name}~"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The session name that the git tree entry `name` stands for.
pub fn from_tree(name: &str) -> &str {
    match name.strip_suffix('~') {
        Some(stripped) if is_reserved_with_tildes(name) => stripped,
        _ => name,
    }
}

/// Whether `name` is a name git reserves for its own directory followed by zero or more `~`.
fn is_reserved_with_tildes(name: &str) -> bool {
    is_reserved(name.trim_end_matches('~'))
}

/// `.git` or `git~1` (ASCII case-insensitive), followed only by dots and spaces, which Windows
/// drops from names and git's path checks therefore ignore.
fn is_reserved(name: &str) -> bool {
    let b = name.as_bytes();
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
    use super::{from_tree, to_tree};

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
}
