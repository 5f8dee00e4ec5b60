//! Results: one [`Row`] per compared quantity, rendered as a Markdown table for people and as
//! JSON (every sample) for tools.

use std::time::Duration;

use serde::Serialize;

use crate::corpus::Summary;
use crate::machine::Machine;
use crate::stats::Samples;

#[derive(Debug, Clone, Copy, Serialize)]
pub enum Unit {
    Millis,
    /// Throughput in 10^6 bytes per second.
    MegabytesPerSec,
    Bytes,
    /// Requests per second.
    PerSec,
    /// A number of things (entries, files).
    Count,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        match self {
            Unit::Millis if v < 10.0 => format!("{v:.2} ms"),
            Unit::Millis if v < 1000.0 => format!("{v:.1} ms"),
            Unit::Millis => format!("{:.2} s", v / 1000.0),
            Unit::MegabytesPerSec => format!("{v:.0} MB/s"),
            Unit::Bytes if v < 1024.0 * 1024.0 => format!("{:.1} KiB", v / 1024.0),
            Unit::Bytes => format!("{:.1} MiB", v / (1024.0 * 1024.0)),
            Unit::PerSec => format!("{v:.0}/s"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

/// One side of a comparison: what was measured and its samples.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub label: String,
    pub samples: Samples,
}

impl Series {
    pub fn new(label: impl Into<String>, samples: Samples) -> Self {
        Series {
            label: label.into(),
            samples,
        }
    }
}

/// A goal from the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub text: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub bench: &'static str,
    pub unit: Unit,
    pub ours: Series,
    pub reference: Option<Series>,
    pub target: Option<Target>,
}

impl Row {
    pub fn new(bench: &'static str, unit: Unit, ours: Series, reference: Option<Series>) -> Self {
        Row {
            bench,
            unit,
            ours,
            reference,
            target: None,
        }
    }

    pub fn with_target(mut self, text: impl Into<String>, met: bool) -> Self {
        self.target = Some(Target { text: text.into(), met });
        self
    }

    /// Median of ours over median of the reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference
            .as_ref()
            .map(|r| self.ours.samples.median() / r.samples.median())
            .filter(|x| x.is_finite()) // a side without samples (a reference not run) has none
    }
}

fn cells(unit: Unit, s: &Series) -> [String; 6] {
    let x = &s.samples;
    [
        s.label.clone(),
        x.len().to_string(),
        unit.format(x.median()),
        unit.format(x.p99()),
        unit.format(x.min()),
        unit.format(x.max()),
    ]
}

pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| bench | ours | n | median | p99 | min | max | reference | n | median | p99 | min | max | ours/ref | target | met |\n\
         |---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|---|---|\n",
    );
    for r in rows {
        let mut row = vec![r.bench.to_owned()];
        row.extend(cells(r.unit, &r.ours));
        match &r.reference {
            Some(s) => row.extend(cells(r.unit, s)),
            None => row.extend(std::iter::repeat_n(String::new(), 6)),
        }
        row.push(r.ratio().map(|x| format!("{x:.3}")).unwrap_or_default());
        match &r.target {
            Some(t) => row.extend([t.text.clone(), if t.met { "met" } else { "NOT met" }.to_owned()]),
            None => row.extend([String::new(), String::new()]),
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

#[derive(Serialize)]
pub struct JsonReport<'a> {
    pub machine: &'a Machine,
    pub command: &'a str,
    pub corpus: &'a Summary,
    pub rounds: usize,
    pub total_seconds: f64,
    pub rows: &'a [Row],
}

pub fn json<'a>(
    machine: &'a Machine,
    command: &'a str,
    corpus: &'a Summary,
    rounds: usize,
    total: Duration,
    rows: &'a [Row],
) -> JsonReport<'a> {
    JsonReport {
        machine,
        command,
        corpus,
        rounds,
        total_seconds: total.as_secs_f64(),
        rows,
    }
}
