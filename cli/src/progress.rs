//! Progress bars for transfers: only on a terminal, never with `--json`, and only for
//! transfers of a few MiB or more (or of unknown size).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::Out;

/// Transfers smaller than this show no bar.
const THRESHOLD: u64 = 4 << 20;

pub struct Progress(ProgressBar);

impl Progress {
    /// A progress that shows nothing (background work such as a mount's uploads).
    pub fn hidden() -> Progress {
        Progress(ProgressBar::hidden())
    }

    pub fn new(out: Out, what: &str, total: Option<u64>) -> Progress {
        let show = !out.json && std::io::stderr().is_terminal() && total.is_none_or(|t| t >= THRESHOLD);
        if !show {
            return Progress::hidden();
        }
        let bar = match total {
            Some(t) => {
                let bar = ProgressBar::new(t);
                if let Ok(style) =
                    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                if let Ok(style) = ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}") {
                    bar.set_style(style);
                }
                bar
            }
        };
        bar.set_message(what.to_owned());
        Progress(bar)
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn set(&self, n: u64) {
        self.0.set_position(n);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}
