//! `small-edit`: one byte changed in the middle of a large stored file with `write_at`. Content
//! defined chunking should store only the chunk or two around the change; `git add` of the
//! changed file stores a whole new zlib-compressed copy. Reports new bytes and time.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use aether_core::{CreateOptions, Engine, EngineConfig, SessionId, SessionSource, WriteOptions};
use anyhow::{Context, Result, ensure};

use super::{Bench, ms};
use crate::ctx::Ctx;
use crate::fixture::command::{git, run};
use crate::fixture::data::{dir_size, write_random_file};
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct SmallEdit;

const TARGET_BYTES: f64 = 512.0 * 1024.0;
const FILE: &str = "big.bin";

/// What one edit cost: time in ms, new chunk bytes, new bytes anywhere in the data directory.
struct Cost {
    millis: f64,
    chunk_bytes: f64,
    disk_bytes: f64,
}

fn ours(ctx: &Ctx, engine: &Engine, session: &SessionId, data_dir: &Path, offset: u64) -> Result<Cost> {
    let before = engine.objects().chunk_store().stats();
    let disk_before = dir_size(data_dir)?;
    let old = ctx.rt.block_on(engine.read(session, FILE, offset, Some(1), None))?;
    let byte = old.first().context("reading the byte to change")? ^ 0xff;
    let t = Instant::now();
    ctx.rt.block_on(engine.write_at(session, FILE, offset, vec![byte]))?;
    let millis = ms(t.elapsed());
    let after = engine.objects().chunk_store().stats();
    let now = ctx.rt.block_on(engine.read(session, FILE, offset, Some(1), None))?;
    ensure!(now == [byte], "write_at did not change the byte at {offset}");
    eprintln!("small-edit: ours stored {} new chunks", after.chunks - before.chunks);
    Ok(Cost {
        millis,
        chunk_bytes: (after.stored_bytes - before.stored_bytes) as f64,
        disk_bytes: dir_size(data_dir)?.saturating_sub(disk_before) as f64,
    })
}

/// Flip the byte in the checkout, `git add` it, and measure the new loose object.
fn reference(repo: &Path, offset: u64, n: usize) -> Result<Cost> {
    let path = repo.join(FILE);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .context("opening the git copy")?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).context("reading the byte to change")?;
    f.write_all_at(&[b[0] ^ 0xff], offset).context("changing the byte")?;
    drop(f);
    let t = Instant::now();
    run(git(repo).args(["add", FILE]))?;
    let millis = ms(t.elapsed());
    let oid = run(git(repo).args(["rev-parse", &format!(":{FILE}")]))?;
    let object = repo.join(".git/objects").join(&oid[..2]).join(&oid[2..]);
    let size = std::fs::metadata(&object)
        .with_context(|| format!("no loose object {}", object.display()))?
        .len();
    run(git(repo).args(["commit", "-q", "-m", &format!("edit {n}")]))?;
    Ok(Cost {
        millis,
        chunk_bytes: size as f64,
        disk_bytes: size as f64,
    })
}

impl Bench for SmallEdit {
    fn name(&self) -> &'static str {
        "small-edit"
    }

    fn about(&self) -> &'static str {
        "1-byte write_at in the middle of a large file (256 MiB): new bytes and time, vs git add"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("small-edit")?;
        let repo = ctx.dir("small-edit/repo")?;
        let data_dir = dir.join("engine");
        let size = ctx.opts.edit_mib << 20;
        let src = repo.join(FILE);
        write_random_file(&src, size, 0x5ed17)?;
        run(git(&repo).args(["init", "-q"]))?;
        run(git(&repo).args(["add", FILE]))?;
        run(git(&repo).args(["commit", "-q", "-m", "base"]))?;

        let engine = ctx.rt.block_on(Engine::open(EngineConfig::new(&data_dir)))?;
        let session = ctx.rt.block_on(async {
            let session = engine
                .create_session(SessionSource::Empty, CreateOptions::default())
                .await?
                .id;
            let file = tokio::fs::File::open(&src).await.context("opening the file to store")?;
            engine
                .write_file(
                    &session,
                    FILE,
                    file,
                    WriteOptions {
                        size: Some(size),
                        ..Default::default()
                    },
                )
                .await?;
            anyhow::Ok(session)
        })?;

        let (mut time, mut chunk, mut disk) = (Samples::default(), Samples::default(), Samples::default());
        let (mut git_time, mut git_bytes) = (Samples::default(), Samples::default());
        for round in 0..ctx.opts.rounds {
            // A different byte each round, all near the middle.
            let offset = (size / 2 + round as u64 * 1_000_003) % size;
            let (a, b) = if round.is_multiple_of(2) {
                let a = ours(ctx, &engine, &session, &data_dir, offset)?;
                (a, reference(&repo, offset, round)?)
            } else {
                let b = reference(&repo, offset, round)?;
                (ours(ctx, &engine, &session, &data_dir, offset)?, b)
            };
            eprintln!(
                "small-edit: round {} of {}: ours {:.1} KiB in {:.0} ms, git add {:.1} MiB in {:.0} ms",
                round + 1,
                ctx.opts.rounds,
                a.chunk_bytes / 1024.0,
                a.millis,
                b.chunk_bytes / (1024.0 * 1024.0),
                b.millis
            );
            time.push(a.millis);
            chunk.push(a.chunk_bytes);
            disk.push(a.disk_bytes);
            git_time.push(b.millis);
            git_bytes.push(b.chunk_bytes);
        }
        drop(engine);
        std::fs::remove_dir_all(&dir).context("removing the small-edit data")?;

        let mib = ctx.opts.edit_mib;
        let git_object = Series::new("git add: new loose object on disk", git_bytes);
        let met = chunk.max() < TARGET_BYTES;
        Ok(vec![
            Row::new(
                "small-edit",
                Unit::Bytes,
                Series::new(format!("new chunk bytes, 1 byte changed in {mib} MiB"), chunk),
                Some(git_object.clone()),
            )
            .with_target("< 512 KiB new chunk data (every round)", met),
            Row::new(
                "small-edit",
                Unit::Bytes,
                Series::new(
                    "new bytes in the whole data dir (chunks, manifest, odb, metadata)",
                    disk,
                ),
                Some(git_object),
            ),
            Row::new(
                "small-edit",
                Unit::Millis,
                Series::new(format!("write_at of 1 byte in {mib} MiB"), time),
                Some(Series::new("git add of the changed file", git_time)),
            ),
        ])
    }
}
