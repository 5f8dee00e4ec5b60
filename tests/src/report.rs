//! Differences found by a check, collected from any thread and reported all at once: every
//! difference names the surface that showed it, the path and what differed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    pub surface: String,
    pub path: String,
    pub what: String,
}

/// How many lines per surface a failure message prints; the complete list goes to a file.
const PRINTED_PER_SURFACE: usize = 60;

#[derive(Debug, Default)]
pub struct Differences {
    list: Mutex<Vec<Difference>>,
}

impl Differences {
    pub fn new() -> Differences {
        Differences::default()
    }

    pub fn add(&self, surface: &str, path: impl Into<String>, what: impl Into<String>) {
        self.list.lock().push(Difference {
            surface: surface.to_owned(),
            path: path.into(),
            what: what.into(),
        });
    }

    pub fn len(&self) -> usize {
        self.list.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every difference, grouped by surface (at most [`PRINTED_PER_SURFACE`] lines each; the
    /// rest are written to `full_list` when given).
    pub fn render(&self, full_list: Option<&std::path::Path>) -> String {
        let list = self.list.lock().clone();
        let mut by_surface: BTreeMap<&str, Vec<&Difference>> = BTreeMap::new();
        for d in &list {
            by_surface.entry(d.surface.as_str()).or_default().push(d);
        }
        let mut out = String::new();
        let _ = writeln!(out, "{} differences on {} surfaces:", list.len(), by_surface.len());
        for (surface, ds) in &by_surface {
            let _ = writeln!(out, "== {surface}: {} differences", ds.len());
            for d in ds.iter().take(PRINTED_PER_SURFACE) {
                let _ = writeln!(out, "  [{surface}] {}: {}", d.path, d.what);
            }
            if ds.len() > PRINTED_PER_SURFACE {
                let _ = writeln!(out, "  ... {} more on {surface}", ds.len() - PRINTED_PER_SURFACE);
            }
        }
        if let Some(path) = full_list
            && list.len() > PRINTED_PER_SURFACE
        {
            let all: String = list
                .iter()
                .map(|d| format!("[{}] {}: {}\n", d.surface, d.path, d.what))
                .collect();
            if std::fs::write(path, all).is_ok() {
                let _ = writeln!(out, "the complete list is in {}", path.display());
            }
        }
        out
    }

    /// Panic with every difference when there is any.
    pub fn assert_none(&self, what: &str) {
        if !self.is_empty() {
            let file = std::env::temp_dir().join(format!(
                "aether-integrity-{}-{}.txt",
                what.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
                std::process::id()
            ));
            panic!("{what}: {}", self.render(Some(&file)));
        }
    }
}
