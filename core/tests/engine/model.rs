//! Model-based test: random sequences of operations applied to a session and to a `BTreeMap`
//! reference, compared after every step. Forks switch to the child; checkpoints snapshot the
//! model; restores go back to a snapshot; reopen restarts the engine on the same data.

use std::collections::{BTreeMap, HashMap};

use aether_core::{Engine, FileKind, SessionId, SessionSource, WriteOptions};
use proptest::prelude::*;

use crate::common::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum MNode {
    File { data: Vec<u8>, exec: bool },
    Dir,
    Link(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model(BTreeMap<String, MNode>);

fn parent(p: &str) -> Option<&str> {
    p.rfind('/').map(|i| &p[..i])
}

fn ancestors(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut cur = p;
    while let Some(q) = parent(cur) {
        out.push(q);
        cur = q;
    }
    out.reverse();
    out
}

impl Model {
    fn is_dir(&self, p: &str) -> bool {
        p.is_empty() || self.0.get(p) == Some(&MNode::Dir)
    }

    fn below(&self, p: &str) -> Vec<String> {
        let prefix = format!("{p}/");
        self.0.keys().filter(|k| k.starts_with(&prefix)).cloned().collect()
    }

    /// Ancestors must be directories where they exist; missing ones are created when asked.
    fn prepare_parents(&mut self, p: &str, create: bool) -> bool {
        for a in ancestors(p) {
            match self.0.get(a) {
                Some(MNode::Dir) => {}
                Some(_) => return false,
                None if create => {
                    self.0.insert(a.to_owned(), MNode::Dir);
                }
                None => return false,
            }
        }
        true
    }

    fn parents_ok(&self, p: &str) -> bool {
        ancestors(p)
            .iter()
            .all(|a| self.0.get(*a).is_none_or(|n| *n == MNode::Dir))
    }

    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Write { path, len, seed } => {
                if !self.parents_ok(path) || self.is_dir(path) {
                    return false;
                }
                self.prepare_parents(path, true);
                let exec = matches!(self.0.get(path), Some(MNode::File { exec: true, .. }));
                self.0.insert(
                    path.clone(),
                    MNode::File {
                        data: noise(*seed, *len),
                        exec,
                    },
                );
                true
            }
            Op::WriteAt { path, offset, byte } => match self.0.get_mut(path) {
                Some(MNode::File { data, .. }) => {
                    let off = *offset as usize;
                    if data.len() < off + 1 {
                        data.resize(off + 1, 0);
                    }
                    data[off] = *byte;
                    true
                }
                _ => false,
            },
            Op::Truncate { path, size } => match self.0.get_mut(path) {
                Some(MNode::File { data, .. }) => {
                    data.resize(*size as usize, 0);
                    true
                }
                _ => false,
            },
            Op::Delete { path, recursive } => {
                if !self.parents_ok(path) || !self.0.contains_key(path) {
                    return false;
                }
                let below = self.below(path);
                if !below.is_empty() && !recursive {
                    return false;
                }
                for k in below {
                    self.0.remove(&k);
                }
                self.0.remove(path);
                true
            }
            Op::Mkdir { path, parents } => {
                if !self.parents_ok(path) {
                    return false;
                }
                match self.0.get(path) {
                    Some(MNode::Dir) => return *parents,
                    Some(_) => return false,
                    None => {}
                }
                if !self.prepare_parents(path, *parents) {
                    return false;
                }
                self.0.insert(path.clone(), MNode::Dir);
                true
            }
            Op::Rename { from, to } => {
                if !self.parents_ok(from) || !self.parents_ok(to) {
                    return false;
                }
                let Some(node) = self.0.get(from).cloned() else {
                    return false;
                };
                if from == to {
                    return true;
                }
                let from_dir = node == MNode::Dir;
                if from_dir && to.starts_with(&format!("{from}/")) {
                    return false;
                }
                match self.0.get(to) {
                    Some(MNode::Dir) if !from_dir => return false,
                    Some(d) if *d != MNode::Dir && from_dir => return false,
                    Some(MNode::Dir) if !self.below(to).is_empty() => return false,
                    Some(_) => {}
                    None if !self.is_dir(parent(to).unwrap_or("")) => return false,
                    None => {}
                }
                let moved: Vec<(String, MNode)> = self
                    .below(from)
                    .into_iter()
                    .map(|k| {
                        let n = self.0.remove(&k).unwrap();
                        (format!("{to}{}", &k[from.len()..]), n)
                    })
                    .collect();
                self.0.remove(from);
                self.0.insert(to.clone(), node);
                self.0.extend(moved);
                true
            }
            Op::Symlink { path, target } => {
                if !self.parents_ok(path) || self.0.contains_key(path) || !self.is_dir(parent(path).unwrap_or("")) {
                    return false;
                }
                self.0.insert(path.clone(), MNode::Link(target.clone()));
                true
            }
            Op::Chmod { path, exec } => {
                if !self.parents_ok(path) {
                    return false;
                }
                match self.0.get_mut(path) {
                    Some(MNode::File { exec: e, .. }) => {
                        *e = *exec;
                        true
                    }
                    Some(MNode::Dir) => true,
                    _ => false,
                }
            }
            Op::Fork | Op::Checkpoint | Op::Restore(_) | Op::Reopen => {
                unreachable!("handled by the driver")
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write { path: String, len: usize, seed: u64 },
    WriteAt { path: String, offset: u64, byte: u8 },
    Truncate { path: String, size: u64 },
    Delete { path: String, recursive: bool },
    Mkdir { path: String, parents: bool },
    Rename { from: String, to: String },
    Symlink { path: String, target: String },
    Chmod { path: String, exec: bool },
    Fork,
    Checkpoint,
    Restore(usize),
    Reopen,
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3).prop_map(|v| v.join("/"))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // Lengths straddle the 4 KiB large-file threshold of the test engine.
    let len = prop::sample::select(vec![0usize, 7, 300, 5000, 9000]);
    prop_oneof![
        4 => (path_strategy(), len, any::<u64>()).prop_map(|(path, len, seed)| Op::Write { path, len, seed }),
        2 => (path_strategy(), 0u64..10_000, any::<u8>()).prop_map(|(path, offset, byte)| Op::WriteAt { path, offset, byte }),
        1 => (path_strategy(), 0u64..6000).prop_map(|(path, size)| Op::Truncate { path, size }),
        2 => (path_strategy(), any::<bool>()).prop_map(|(path, recursive)| Op::Delete { path, recursive }),
        2 => (path_strategy(), any::<bool>()).prop_map(|(path, parents)| Op::Mkdir { path, parents }),
        2 => (path_strategy(), path_strategy()).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => (path_strategy(), prop::sample::select(vec!["a", "../x", "b/c"]))
            .prop_map(|(path, t)| Op::Symlink { path, target: t.to_owned() }),
        1 => (path_strategy(), any::<bool>()).prop_map(|(path, exec)| Op::Chmod { path, exec }),
        1 => Just(Op::Fork),
        1 => Just(Op::Checkpoint),
        1 => (0usize..4).prop_map(Op::Restore),
        1 => Just(Op::Reopen),
    ]
}

async fn run_engine_op(e: &Engine, id: &SessionId, op: &Op) -> bool {
    let r = match op {
        Op::Write { path, len, seed } => e
            .write_bytes(
                id,
                path,
                noise(*seed, *len),
                WriteOptions {
                    create_parents: true,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        Op::WriteAt { path, offset, byte } => e.write_at(id, path, *offset, vec![*byte]).await.map(|_| ()),
        Op::Truncate { path, size } => e.truncate(id, path, *size).await.map(|_| ()),
        Op::Delete { path, recursive } => e.delete(id, path, *recursive).await,
        Op::Mkdir { path, parents } => e.mkdir(id, path, *parents).await.map(|_| ()),
        Op::Rename { from, to } => e.rename(id, from, to).await,
        Op::Symlink { path, target } => e.symlink(id, path, target).await.map(|_| ()),
        Op::Chmod { path, exec } => e.chmod(id, path, if *exec { 0o755 } else { 0o644 }).await.map(|_| ()),
        _ => unreachable!(),
    };
    r.is_ok()
}

async fn snapshot(e: &Engine, id: &SessionId) -> Model {
    let mut m = Model::default();
    for entry in e.list(id, "", true, None).await.expect("list") {
        let p = entry.stat.path.clone();
        let node = match entry.stat.kind {
            FileKind::Dir => MNode::Dir,
            FileKind::Symlink => MNode::Link(entry.stat.symlink_target.clone().expect("target")),
            FileKind::File => {
                let data = get(e, id, &p).await;
                assert_eq!(data.len() as u64, entry.stat.size, "size of {p}");
                MNode::File {
                    data,
                    exec: entry.stat.mode & 0o100 != 0,
                }
            }
            other => panic!("the model makes no {other:?} ({p})"),
        };
        m.0.insert(p, node);
    }
    m
}

fn run_case(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        small_chunks(&mut cfg);
        let mut t = Engine::open(cfg.clone()).await.unwrap();
        let mut id = empty_session(&t).await;
        let mut model = Model::default();
        // Checkpoint number -> model state, for the current session.
        let mut checkpoints: HashMap<u64, Model> = HashMap::new();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Fork => {
                    let child = t
                        .create_session(
                            SessionSource::Session {
                                id: id.clone(),
                                at: None,
                            },
                            Default::default(),
                        )
                        .await;
                    id = child.expect("fork").id;
                    checkpoints.clear();
                }
                Op::Checkpoint => {
                    let cp = t.checkpoint(&id, None).await.expect("checkpoint");
                    checkpoints.insert(cp.checkpoint.number, model.clone());
                }
                Op::Restore(k) => {
                    let mut numbers: Vec<u64> = checkpoints.keys().copied().collect();
                    numbers.sort_unstable();
                    if let Some(n) = numbers.get(*k) {
                        let out = t.restore(&id, &format!("checkpoints/{n}")).await.expect("restore");
                        if let Some(saved) = out.saved {
                            checkpoints.insert(saved.checkpoint.number, model.clone());
                        }
                        model = checkpoints[n].clone();
                    }
                }
                Op::Reopen => {
                    drop(t);
                    t = Engine::open(cfg.clone()).await.unwrap();
                }
                op => {
                    let expected = model.apply(op);
                    let got = run_engine_op(&t, &id, op).await;
                    assert_eq!(
                        got, expected,
                        "step {step}: {op:?} succeeded={got}, model says {expected}"
                    );
                }
            }
            let actual = snapshot(&t, &id).await;
            assert_eq!(actual, model, "step {step} after {op:?}");
        }
        // Every checkpoint still reads back as recorded: what git holds (files, their exec bit
        // and bytes, symlinks), since empty directories live only in a live overlay.
        for (n, m) in &checkpoints {
            let at = format!("checkpoints/{n}");
            let mut got = BTreeMap::new();
            for entry in t.list(&id, "", true, Some(&at)).await.unwrap() {
                let p = entry.stat.path.clone();
                match entry.stat.kind {
                    FileKind::Dir => continue,
                    FileKind::Symlink => got.insert(p, MNode::Link(entry.stat.symlink_target.unwrap())),
                    FileKind::File => {
                        let data = t.read(&id, &p, 0, None, Some(&at)).await.unwrap();
                        got.insert(
                            p,
                            MNode::File {
                                data,
                                exec: entry.stat.mode & 0o100 != 0,
                            },
                        )
                    }
                    other => panic!("the model makes no {other:?} ({p})"),
                };
            }
            let want: BTreeMap<_, _> =
                m.0.iter()
                    .filter(|(_, v)| **v != MNode::Dir)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            assert_eq!(got, want, "checkpoint {n}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]
    #[test]
    fn session_matches_model(ops in prop::collection::vec(op_strategy(), 1..40)) {
        run_case(ops);
    }
}
