//! Where each read of a directory left off. The kernel reads a listing in buffers of a few KiB
//! (a dozen entries with long names), each from the offset the previous one ended at. Offsets
//! are positions in the listing ("." and ".." first, then the children in name order), and a
//! position in the tree's ordered map of children is found only by walking to it: reading a
//! directory of n entries that way costs n²/2 steps (55,000 entries took 28 s). So each read
//! records the name it ended after, under the offset it handed out, and the next read from
//! that offset continues after that name at once. A read from an offset nobody recorded (the
//! record was dropped, or two readers interleave) walks to the position as before.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::ops::Bound;

use parking_lot::Mutex;

/// Most directory reads remembered at once; past it the records start over (a read whose record
/// was dropped only walks to its position).
const KEPT: usize = 1024;

#[derive(Default)]
pub(super) struct DirCursors {
    /// (directory, offset handed out) -> the name of the entry at that offset.
    after: Mutex<HashMap<(u64, u64), OsString>>,
}

impl DirCursors {
    /// Entries of a directory from `offset`: "." and ".." (at positions 0 and 1), then
    /// `children` in name order, each with the offset of the entry after it, for as long as
    /// `add` takes them (`add` returns `true` when its buffer is full: that entry was not added).
    pub(super) fn read(
        &self,
        dir: u64,
        parent: u64,
        offset: u64,
        children: Option<&BTreeMap<OsString, u64>>,
        mut add: impl FnMut(u64, u64, &OsStr) -> bool,
    ) {
        let mut at = offset;
        for (pos, ino, name) in [(0, dir, "."), (1, parent, "..")] {
            if at == pos {
                if add(ino, pos + 1, OsStr::new(name)) {
                    return;
                }
                at += 1;
            }
        }
        let Some(children) = children else { return };
        let resumed = self.after.lock().remove(&(dir, offset));
        let rest: Box<dyn Iterator<Item = (&OsString, &u64)>> = match &resumed {
            Some(name) if offset >= 2 => {
                Box::new(children.range::<OsString, _>((Bound::Excluded(name), Bound::Unbounded)))
            }
            _ => Box::new(children.iter().skip((at - 2) as usize)),
        };
        let mut last: Option<&OsString> = None;
        for (name, &ino) in rest {
            if add(ino, at + 1, name) {
                break;
            }
            at += 1;
            last = Some(name);
        }
        if let Some(name) = last {
            let mut after = self.after.lock();
            if after.len() >= KEPT {
                after.clear();
            }
            after.insert((dir, at), name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(n: usize) -> BTreeMap<OsString, u64> {
        (0..n)
            .map(|i| (OsString::from(format!("f{i:05}")), 100 + i as u64))
            .collect()
    }

    /// Reads the whole directory `per` entries at a time, as the kernel does.
    fn read_all(c: &DirCursors, children: &BTreeMap<OsString, u64>, per: usize) -> Vec<(u64, u64, String)> {
        let mut out: Vec<(u64, u64, String)> = Vec::new();
        let mut offset = 0;
        loop {
            let mut got = 0;
            c.read(1, 1, offset, Some(children), |ino, next, name| {
                if got == per {
                    return true;
                }
                got += 1;
                out.push((ino, next, name.to_string_lossy().into_owned()));
                false
            });
            if got == 0 {
                return out;
            }
            offset = out.last().unwrap().1;
        }
    }

    #[test]
    fn reads_in_small_buffers_give_every_entry_once_with_consecutive_offsets() {
        let children = dir(1000);
        let c = DirCursors::default();
        for per in [1, 7, 2000] {
            let got = read_all(&c, &children, per);
            assert_eq!(got.len(), 1002, "{per} per read");
            assert_eq!(got[0].2, ".");
            assert_eq!(got[1].2, "..");
            for (i, (ino, next, name)) in got.iter().enumerate().skip(2) {
                assert_eq!(*next, i as u64 + 1);
                assert_eq!(*name, format!("f{:05}", i - 2));
                assert_eq!(*ino, 100 + i as u64 - 2);
            }
        }
    }

    #[test]
    fn a_read_continues_after_the_name_it_ended_at_even_when_entries_came_before_it() {
        let mut children = dir(10);
        let c = DirCursors::default();
        let mut first = Vec::new();
        c.read(1, 1, 0, Some(&children), |_, next, name| {
            if first.len() == 6 {
                return true;
            }
            first.push((next, name.to_string_lossy().into_owned()));
            false
        });
        assert_eq!(first.last().unwrap(), &(6, "f00003".to_owned()));
        // Two names inserted before the cursor: positions shift, the next read does not repeat.
        children.insert("a".into(), 1);
        children.insert("b".into(), 2);
        let mut rest = Vec::new();
        c.read(1, 1, 6, Some(&children), |_, _, name| {
            rest.push(name.to_string_lossy().into_owned());
            false
        });
        assert_eq!(rest, ["f00004", "f00005", "f00006", "f00007", "f00008", "f00009"]);
        // Without a record (another offset), the position is walked to.
        let mut again = Vec::new();
        c.read(1, 1, 4, Some(&children), |_, _, name| {
            again.push(name.to_string_lossy().into_owned());
            again.len() == 2
        });
        assert_eq!(again, ["f00000", "f00001"]);
    }
}
