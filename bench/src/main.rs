//! `aether-bench`: side-by-side benchmarks of AetherFS against git, the native filesystem and a
//! plain file server. Each benchmark measures ours and a reference in the same run, alternating
//! the two over several rounds, and prints one Markdown table (median, p99, min, max, ratio,
//! target); `--json FILE` writes every sample too.
//!
//! This binary only measures: it never changes the engine's behaviour or its data layout. It
//! keeps the corpora it prepares in the work directory between runs and removes everything else
//! it writes at the end.

#![forbid(unsafe_code)]

mod benches;
mod cli;
mod corpus;
mod ctx;
mod fixture;
mod floor_fs;
mod git_corpus;
mod git_http;
mod git_index;
mod git_serving;
mod load;
mod machine;
mod nginx;
mod report;
mod scratch_fs;
mod server;
mod static_server;
mod stats;
mod trash;

use std::time::Instant;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The servers under test, started by the benchmarks as child processes of this binary.
    match args.first().map(String::as_str) {
        Some(server::SERVE_ARG) => return server::serve_aetherd(&args[1..]),
        Some(server::STATIC_ARG) => return server::serve_static(&args[1..]),
        Some(floor_fs::FLOOR_ARG) => return floor_fs::serve(&args[1..]),
        _ => {}
    }
    let opts = match cli::Options::parse(args)? {
        cli::Parsed::Run(opts) => opts,
        cli::Parsed::Help => {
            print!("{}", cli::usage(&benches::all()));
            return Ok(());
        }
        cli::Parsed::List => {
            for b in benches::all() {
                let mark = if b.default_set() { '*' } else { ' ' };
                println!("{mark} {:<17} {}", b.name(), b.about());
            }
            return Ok(());
        }
    };
    let selected = select(&opts.names)?;
    let machine = machine::Machine::detect(Some(&opts.work_dir));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!("{}", machine.describe());
    println!("command: {command}");

    let mut ctx = ctx::Ctx::new(opts.clone())?;
    let started = Instant::now();
    let corpus = ctx.corpus()?.summary.clone();
    println!(
        "corpus:  {}: {} files, {:.1} MB",
        corpus.name,
        corpus.files,
        corpus.bytes as f64 / 1e6
    );
    println!();
    let mut rows = Vec::new();
    let mut took = Vec::new();
    for (i, bench) in selected.iter().enumerate() {
        eprintln!("== {} ({})", bench.name(), bench.about());
        let t = Instant::now();
        let out = bench
            .run(&mut ctx)
            .with_context(|| format!("benchmark '{}'", bench.name()))?;
        eprintln!("== {} done in {:.1} s", bench.name(), t.elapsed().as_secs_f64());
        took.push(format!("{} {:.0} s", bench.name(), t.elapsed().as_secs_f64()));
        // Nothing later needs the shared corpus: its 78k-file checkout and engine directory go
        // now, in the background, instead of at the end.
        if !selected[i + 1..].iter().any(|b| b.uses_shared_corpus()) {
            ctx.release_shared()?;
        }
        rows.extend(out);
    }
    let measured = started.elapsed();
    let load_at_end = machine::load_average();
    let cleanup = ctx.cleanup()?;
    let total = started.elapsed();

    println!("{}", report::markdown_table(&rows));
    println!(
        "wall time {:.1} s in all: {:.1} s of benchmarks (corpus preparation included), {:.1} s of cleanup; \
         load average at end {load_at_end}",
        total.as_secs_f64(),
        measured.as_secs_f64(),
        cleanup.as_secs_f64()
    );
    println!("per benchmark: {}", took.join(", "));
    if let Some(path) = &opts.json {
        let doc = report::json(&machine, &command, &corpus, opts.rounds, total, &rows);
        let text = serde_json::to_string_pretty(&doc).context("serializing results")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The benchmarks named on the command line, in registry order; the default set when none is.
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
        .filter(|b| match names.is_empty() {
            true => b.default_set(),
            false => names.iter().any(|n| n == b.name()),
        })
        .collect())
}
