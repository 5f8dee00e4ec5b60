//! Test helper for the crash test: writes files into a session as fast as it can and prints
//! `ack <n> <blake3 of the content>` after each acknowledged write (and `cp <number> <n>` after each checkpoint), until
//! it is killed. Usage: aether-crash-writer DATA_DIR SESSION_ID|new START

use std::io::Write;

use aether_core::{ChunkingConfig, Engine, EngineConfig, SessionSource, WriteOptions};

/// The content of file `n`: every seventh is large enough for the chunk store.
fn content(n: u64) -> Vec<u8> {
    let len = if n.is_multiple_of(7) {
        20_000 + (n as usize % 5000)
    } else {
        10 + (n as usize % 300)
    };
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(31).wrapping_add(n.wrapping_mul(17)) % 251) as u8)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(session), Some(start)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: aether-crash-writer DATA_DIR SESSION_ID|new START".into());
    };
    let mut cfg = EngineConfig::new(dir);
    cfg.large_file_threshold = 4096;
    cfg.chunking = ChunkingConfig {
        min: 256,
        avg: 1024,
        max: 4096,
    };
    let engine = Engine::open(cfg).await?;
    let id = if session == "new" {
        engine
            .create_session(SessionSource::Empty, Default::default())
            .await?
            .id
    } else {
        session.parse()?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "session {id}")?;
    out.flush()?;
    let mut n: u64 = start.parse()?;
    loop {
        let path = format!("d{}/f{n}", n % 13);
        let opts = WriteOptions {
            create_parents: true,
            ..Default::default()
        };
        let data = content(n);
        let hash = blake3::hash(&data);
        engine.write_bytes(&id, &path, data, opts).await?;
        writeln!(out, "ack {n} {hash}")?;
        if n % 40 == 39 {
            let cp = engine.checkpoint(&id, None).await?;
            writeln!(out, "cp {} {n}", cp.checkpoint.number)?;
        }
        out.flush()?;
        n += 1;
    }
}
