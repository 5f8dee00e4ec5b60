//! `aether-bench`: side-by-side benchmarks of the AetherFS engine against git and the native
//! filesystem. Each benchmark measures ours and a reference in the same run, alternating the two
//! over several rounds, and prints one Markdown table (median, p99, min, max, ratio, target).
//!
//! This binary only measures: it never changes the engine's behaviour or its data layout, and it
//! keeps everything it writes under one work directory that it removes at the end.

#![forbid(unsafe_code)]

mod benches;
mod cli;
mod ctx;
mod fixture;
mod machine;
mod report;
mod stats;

use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(benches::http_large::SERVE_ARG) {
        // The server under test, started by `http-large` as a child process of this binary.
        return benches::http_large::serve(&args[1..]);
    }
    let opts = match cli::Options::parse(args)? {
        cli::Parsed::Run(opts) => opts,
        cli::Parsed::Help => {
            print!("{}", cli::usage(&benches::all()));
            return Ok(());
        }
        cli::Parsed::List => {
            for b in benches::all() {
                println!("{:<12} {}", b.name(), b.about());
            }
            return Ok(());
        }
    };
    let selected = select(&opts.names)?;
    let machine = machine::Machine::detect(opts.work_dir.as_deref());
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("{}", machine.describe());
    println!("command: {command}");
    println!();

    let mut ctx = ctx::Ctx::new(opts.clone())?;
    let started = Instant::now();
    let mut rows = Vec::new();
    for bench in &selected {
        eprintln!("== {} ({})", bench.name(), bench.about());
        let t = Instant::now();
        let out = bench
            .run(&mut ctx)
            .with_context(|| format!("benchmark '{}'", bench.name()))?;
        eprintln!("== {} done in {:.1} s", bench.name(), t.elapsed().as_secs_f64());
        rows.extend(out);
    }
    let total = started.elapsed();
    let load_at_end = machine::load_average();
    ctx.cleanup()?;

    println!("{}", report::markdown_table(&rows));
    println!(
        "total time {:.1} s (before cleanup); load average at end {load_at_end}",
        total.as_secs_f64()
    );
    if let Some(path) = &opts.json {
        let doc = report::json(&machine, &command, opts.rounds, total, &rows);
        let text = serde_json::to_string_pretty(&doc).context("serializing results")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The benchmarks named on the command line, in registry order; all of them when none is named.
fn select(names: &[String]) -> Result<Vec<Box<dyn benches::Bench>>> {
    let all = benches::all();
    for n in names {
        if !all.iter().any(|b| b.name() == n) {
            let known: Vec<_> = all.iter().map(|b| b.name()).collect();
            bail!("unknown benchmark '{n}'; known: {}", known.join(", "));
        }
    }
    Ok(all
        .into_iter()
        .filter(|b| names.is_empty() || names.iter().any(|n| n == b.name()))
        .collect())
}
