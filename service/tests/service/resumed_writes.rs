//! A resumed upload (a write at an offset, as `aether fs put --resume` sends it) is one pass
//! and one change of the whole file: it costs what one upload costs (not a rewrite of the file
//! per piece, quadratic in its size), and nobody sees it half applied.

use aether_core::{EventKind, SessionId, Surface};
use aether_service::{Code, Principal, WriteFile};

use crate::fixture;

fn write(session: &str, path: &str, offset: u64, size: Option<u64>) -> WriteFile {
    WriteFile {
        session: session.to_owned(),
        path: path.to_owned(),
        size,
        mode: None,
        create_parents: true,
        offset,
        mtime: None,
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn content(e: &aether_core::Engine, id: &SessionId, path: &str) -> Vec<u8> {
    e.read(id, path, 0, None, None).await.unwrap()
}

#[tokio::test]
async fn a_resumed_upload_is_one_change_of_the_whole_file() {
    let f = fixture().await;
    let id = f.new_session().await;
    let sid: SessionId = id.parse().unwrap();
    let p = Principal::admin(Surface::Grpc);
    let first = noise(1, 10 << 20);
    f.service
        .write_file(&p, write(&id, "big", 0, None), std::io::Cursor::new(first.clone()))
        .await
        .unwrap();
    let after = f.engine.events(&sid, 0, 1000).await.unwrap().last().unwrap().seq;

    // The client had sent 3 MiB before the connection dropped; the rest is 20 MiB.
    let rest = noise(2, 20 << 20);
    let stat = f
        .service
        .write_file(
            &p,
            write(&id, "big", 3 << 20, Some(rest.len() as u64)),
            std::io::Cursor::new(rest.clone()),
        )
        .await
        .unwrap();
    assert_eq!(stat.size, (23 << 20) as u64);
    let mut want = first[..3 << 20].to_vec();
    want.extend_from_slice(&rest);
    assert!(
        content(&f.engine, &sid, "big").await == want,
        "kept prefix, then the body"
    );

    let changes: Vec<_> = f.engine.events(&sid, after, 1000).await.unwrap();
    assert_eq!(
        changes.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Write],
        "one change, not one per piece"
    );
    assert_eq!(changes[0].detail["offset"], 3 << 20);
}

#[tokio::test]
async fn resuming_past_the_end_fills_zeros_and_a_short_body_changes_nothing() {
    let f = fixture().await;
    let id = f.new_session().await;
    let sid: SessionId = id.parse().unwrap();
    let p = Principal::admin(Surface::Grpc);
    let s = &f.service;
    s.write_file(&p, write(&id, "f", 0, None), &b"0123456789"[..])
        .await
        .unwrap();
    s.write_file(&p, write(&id, "f", 14, None), &b"tail"[..]).await.unwrap();
    assert_eq!(content(&f.engine, &sid, "f").await, b"0123456789\0\0\0\0tail");

    // Announced 100 bytes, sent 4: refused, the file as it was.
    let err = s
        .write_file(&p, write(&id, "f", 2, Some(100)), &b"oops"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument, "{err}");
    assert_eq!(content(&f.engine, &sid, "f").await, b"0123456789\0\0\0\0tail");

    let err = s
        .write_file(&p, write(&id, "missing", 5, None), &b"x"[..])
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::NotFound, "{err}");
}
