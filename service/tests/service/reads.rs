use aether_core::Surface;
use aether_service::{Code, ListTree, Principal, ReadFile, WriteFile};

use crate::fixture;

/// The error of a read that must fail (an open file has no `Debug`).
fn failed(r: aether_service::Result<aether_service::ServedFile>) -> aether_service::ServiceError {
    match r {
        Ok(f) => panic!("the read succeeded with {} bytes", f.size()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn reads_say_why_they_cannot_give_bytes() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let p = Principal::admin(Surface::Rest);
    let w = WriteFile {
        session: id.clone(),
        path: "d/f".into(),
        create_parents: true,
        ..Default::default()
    };
    let stat = s.write_file(&p, w, &b"0123456789"[..]).await.unwrap();
    s.symlink(&p, &id, "link", "d/f").await.unwrap();
    let read = |path: &str| ReadFile {
        session: id.clone(),
        path: path.into(),
        ..Default::default()
    };

    let e = failed(s.open_file(&p, read("link")).await);
    assert_eq!(e.code, Code::IsASymlink);
    assert_eq!(e.details.get("target").map(String::as_str), Some("d/f"));
    assert_eq!(failed(s.open_file(&p, read("d")).await).code, Code::IsADirectory);
    assert_eq!(failed(s.open_file(&p, read("nope")).await).code, Code::NotFound);
    let mut past = read("d/f");
    past.offset = 11;
    assert_eq!(failed(s.open_file(&p, past).await).code, Code::RangeNotSatisfiable);
    let mut at_end = read("d/f");
    at_end.offset = 10;
    assert!(
        s.open_file(&p, at_end).await.is_ok(),
        "reading from the end gives no bytes, no error"
    );
    let mut named = read("d/f");
    named.content_id = Some("95d09f2b10159347eece71399a7e2e907ea3df4f".into());
    assert_eq!(failed(s.open_file(&p, named).await).code, Code::Stale);
    let mut named = read("d/f");
    named.content_id = stat.oid.clone();
    assert_eq!(s.open_file(&p, named).await.unwrap().size(), 10);
}

#[tokio::test]
async fn a_bounded_listing_refuses_more_than_its_limit_and_modes_are_checked() {
    let f = fixture().await;
    let s = &f.service;
    let id = f.new_session().await;
    let p = Principal::admin(Surface::Rest);
    for i in 0..101 {
        s.mkdir(&p, &id, &format!("d/{i}"), true).await.unwrap();
    }
    let list = |recursive| ListTree {
        session: id.clone(),
        path: "d".into(),
        recursive,
        at: None,
    };
    // One message never holds more than the bound, one directory's or a subtree's.
    assert_eq!(s.list_tree(&p, list(false)).await.unwrap_err().code, Code::TooLarge);
    let e = s.list_tree(&p, list(true)).await.unwrap_err();
    assert_eq!(e.code, Code::TooLarge);
    s.delete(&p, &id, "d/100", false).await.unwrap();
    assert_eq!(s.list_tree(&p, list(false)).await.unwrap().entries.len(), 100);
    assert_eq!(
        s.chmod(&p, &id, "d", 0o10000).await.unwrap_err().code,
        Code::InvalidArgument
    );
    assert_eq!(s.chmod(&p, &id, "d", 0o755).await.unwrap().mode & 0o7777, 0o755);
}
