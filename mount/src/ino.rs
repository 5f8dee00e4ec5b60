//! Inode numbers: derived from what identifies an entry in the session, so that every mount of
//! the session, of its forks and of its restores, on any machine, shows the same `st_ino` for
//! the same unchanged entry (git's index records it, and re-reads every file whose number moved).
//!
//! This module only derives numbers and probes past taken ones; the tree says which numbers are
//! taken. It must never hand out a number the tree holds: fuser uses the number as the FUSE node
//! id, and the kernel requires that one node id never names two files while it still holds the
//! first (see `Tree::insert`).

use crate::tree::ROOT;

/// The smallest number a node other than the root gets (0 is no node, 1 the root).
pub const FIRST: u64 = ROOT + 1;

/// The largest number handed out: 2^53 - 1. Wider numbers would be as stable, but JavaScript's
/// `fs.stat` (without `bigint`) holds `ino` in a double and rounds anything above 2^53, so two
/// files could show one number to tools that compare them. With a tree of a hundred thousand
/// entries, two paths share a derived number with odds of about 1 in 2 million (n^2 / 2^54).
pub const LAST: u64 = (1 << 53) - 1;

/// The BLAKE3 key-derivation context of the numbers. Changing it changes every number every
/// mount shows: never, or git re-reads every checkout once.
const CONTEXT: &str = "aetherfs 2025-06 mount inode number v1";

/// What a node's number is derived from.
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    /// An entry by its session path (`dir/name`, no leading `/`).
    Path(&'a str),
    /// A hard-link group of the server (`RemoteEntry::link`): every name of it is one inode.
    Group(u64),
    /// A node made where no path can be named (below a directory removed meanwhile, or a name
    /// that is not UTF-8): any free number does.
    Unnamed,
}

/// How numbers are derived: the whole valid range, or (tests) a few numbers, to force
/// collisions.
#[derive(Debug, Clone, Copy)]
pub struct Numbering {
    /// Derived numbers fall in `FIRST..FIRST + span`; probing walks the whole valid range.
    span: u64,
}

impl Default for Numbering {
    fn default() -> Numbering {
        Numbering { span: LAST - FIRST + 1 }
    }
}

impl Numbering {
    /// Derived numbers folded into `FIRST..FIRST + span` (at least one): with a span smaller
    /// than the tree, entries collide, and the probe decides.
    pub fn squeezed(span: u64) -> Numbering {
        Numbering {
            span: span.clamp(1, LAST - FIRST + 1),
        }
    }

    /// The number `id` gets when nothing else holds it: the same in every mount.
    pub fn derived(&self, id: Identity<'_>) -> u64 {
        FIRST + hash(id) % self.span
    }

    /// The number for a new node identified by `id`: its derived number, or the next one up (from
    /// `LAST` back to `FIRST`) that is not `taken`. Deterministic: two mounts that hold the same
    /// numbers give a colliding entry the same one. Ends as long as fewer numbers are taken than
    /// the valid range holds (a tree holds one per node).
    pub fn assign(&self, id: Identity<'_>, taken: impl Fn(u64) -> bool) -> u64 {
        let mut n = self.derived(id);
        while taken(n) {
            n = next(n);
        }
        n
    }
}

/// The number after `n`, from `LAST` back to `FIRST`.
fn next(n: u64) -> u64 {
    if n >= LAST { FIRST } else { n + 1 }
}

fn hash(id: Identity<'_>) -> u64 {
    let mut h = blake3::Hasher::new_derive_key(CONTEXT);
    match id {
        Identity::Path(p) => {
            h.update(b"path\0");
            h.update(p.as_bytes());
        }
        Identity::Group(g) => {
            h.update(b"link\0");
            h.update(&g.to_le_bytes());
        }
        Identity::Unnamed => {
            h.update(b"unnamed\0");
        }
    }
    let mut first = [0; 8];
    first.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_fixed_forever_and_never_reserved() {
        let n = Numbering::default();
        // Pinned: a change here changes the st_ino of every file in every session.
        assert_eq!(n.derived(Identity::Path("src/main.rs")), 5_754_475_701_611_827);
        assert_eq!(n.derived(Identity::Group(7)), 5_495_699_726_217_167);
        assert_ne!(n.derived(Identity::Path("a")), n.derived(Identity::Path("b")));
        assert_ne!(n.derived(Identity::Path("7")), n.derived(Identity::Group(7)));
        for i in 0..10_000 {
            let x = n.derived(Identity::Path(&format!("d/{i}")));
            assert!((FIRST..=LAST).contains(&x), "{x}");
        }
    }

    #[test]
    fn a_taken_number_probes_upward_and_wraps_past_the_last() {
        let tiny = Numbering::squeezed(1);
        assert_eq!(tiny.derived(Identity::Path("a")), FIRST);
        assert_eq!(tiny.assign(Identity::Path("a"), |n| n < FIRST + 3), FIRST + 3);
        let n = Numbering::default();
        let d = n.derived(Identity::Path("x"));
        assert_eq!(n.assign(Identity::Path("x"), |k| k == d), d + 1);
        assert_eq!(next(LAST), FIRST);
    }
}
