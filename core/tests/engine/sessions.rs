use std::collections::{BTreeMap, BTreeSet};

use aether_core::{
    CreateOptions, ErrorKind, Identity, ListFilter, Page, SessionSource, SessionState, SessionUpdate, WriteOptions,
};

use crate::common::*;

#[tokio::test]
async fn create_list_filter_page_label_archive_delete() {
    let e = engine().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let labels = BTreeMap::from([("team".to_string(), if i % 2 == 0 { "a" } else { "b" }.to_string())]);
        let opts = CreateOptions {
            labels,
            tags: BTreeSet::from(["ci".to_string()]),
            branch: None,
            quota: None,
            retention: None,
        };
        ids.push(e.create_session(SessionSource::Empty, opts).await.unwrap().id);
    }
    let team_a = ListFilter {
        labels: BTreeMap::from([("team".into(), "a".into())]),
        state: None,
    };
    let page1 = e.list_sessions(&team_a, &Page { limit: 2, after: None }).await.unwrap();
    let page2 = e
        .list_sessions(
            &team_a,
            &Page {
                limit: 2,
                after: Some(page1[1].id.clone()),
            },
        )
        .await
        .unwrap();
    let listed: Vec<_> = page1.iter().chain(&page2).map(|s| s.id.clone()).collect();
    assert_eq!(listed, [ids[0].clone(), ids[2].clone(), ids[4].clone()]);

    let updated = e
        .update_session(
            &ids[0],
            SessionUpdate {
                labels: BTreeMap::from([("team".into(), None), ("owner".into(), Some("me".into()))]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.labels, BTreeMap::from([("owner".into(), "me".into())]));
    let bad = e
        .update_session(
            &ids[0],
            SessionUpdate {
                labels: BTreeMap::from([("bad key!".into(), Some("v".into()))]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidArgument);

    put(&e, &ids[1], "f", b"1").await;
    let archived = e.archive_session(&ids[1]).await.unwrap();
    assert_eq!(archived.state, SessionState::Archived);
    let err = e
        .write_bytes(&ids[1], "g", b"2".to_vec(), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnly);
    assert_eq!(
        e.checkpoint(&ids[1], None).await.unwrap_err().kind(),
        ErrorKind::ReadOnly
    );
    assert_eq!(get(&e, &ids[1], "f").await, b"1", "archived sessions stay readable");
    let archived_only = ListFilter {
        labels: BTreeMap::new(),
        state: Some(SessionState::Archived),
    };
    assert_eq!(
        e.list_sessions(&archived_only, &Page::default()).await.unwrap().len(),
        1
    );

    e.delete_session(&ids[2]).await.unwrap();
    assert_eq!(e.get_session(&ids[2]).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(e.delete_session(&ids[2]).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        e.list_sessions(&ListFilter::default(), &Page::default())
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        e.get_session(&"notanid".parse().unwrap_or(ids[2].clone()))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn fork_is_isolated_both_ways() {
    let e = engine().await;
    let parent = empty_session(&e).await;
    put(&e, &parent, "shared", b"base").await;
    let child = e
        .create_session(
            SessionSource::Session {
                id: parent.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(child.parent.as_ref(), Some(&parent));
    put(&e, &child.id, "shared", b"child").await;
    put(&e, &parent, "only-parent", b"p").await;
    assert_eq!(get(&e, &parent, "shared").await, b"base");
    assert_eq!(get(&e, &child.id, "shared").await, b"child");
    assert_eq!(
        e.stat(&child.id, "only-parent", None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn checkpoints_restore_and_fork_at_a_checkpoint() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "f", b"v1").await;
    let cp1 = e.checkpoint(&id, Some("first".into())).await.unwrap();
    assert_eq!(cp1.checkpoint.number, 1);
    assert_eq!(cp1.ref_name, format!("refs/aether/sessions/{id}/checkpoints/1"));
    put(&e, &id, "f", b"v2").await;
    put(&e, &id, "g", b"new").await;

    assert_eq!(e.read(&id, "f", 0, None, Some("checkpoints/1")).await.unwrap(), b"v1");
    assert_eq!(
        e.stat(&id, "g", Some("1")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        e.stat(&id, "f", Some("checkpoints/9")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let restored = e.restore(&id, "checkpoints/1").await.unwrap();
    let saved = restored.saved.expect("the discarded state is checkpointed first");
    assert_eq!(saved.checkpoint.number, 2);
    assert_eq!(get(&e, &id, "f").await, b"v1");
    assert_eq!(e.stat(&id, "g", None).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        e.read(&id, "g", 0, None, Some("checkpoints/2")).await.unwrap(),
        b"new",
        "nothing lost"
    );

    let again = e.restore(&id, "checkpoints/1").await.unwrap();
    assert!(again.saved.is_none(), "restoring onto the same state saves nothing");

    let list = e.list_checkpoints(&id).await.unwrap();
    assert_eq!(list.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);

    let fork = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: Some("checkpoints/2".into()),
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(get(&e, &fork.id, "f").await, b"v2");
    assert_eq!(fork.head, Some(saved.checkpoint.commit));
}

#[tokio::test]
async fn commits_on_the_branch_and_log() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a", b"1").await;
    let author = Identity {
        name: "Ada".into(),
        email: "ada@example.com".into(),
    };
    let c1 = e.commit(&id, "first".into(), Some(author.clone()), None).await.unwrap();
    put(&e, &id, "a", b"2").await;
    let c2 = e.commit(&id, "second".into(), None, None).await.unwrap();
    assert_eq!(c2.parents, [c1.id]);
    assert_eq!(c1.author.name, "Ada");
    let log = e.log(&id, None, None, 10).await.unwrap();
    assert_eq!(
        log.iter().map(|c| c.message.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );
    let page = e.log(&id, None, Some(c2.id), 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(e.show_commit(&id, "main").await.unwrap().id, c2.id);
    assert_eq!(
        e.show_commit(&id, &c1.id.to_hex().to_string()).await.unwrap().message,
        "first"
    );
    assert_eq!(e.read(&id, "a", 0, None, Some("heads/main")).await.unwrap(), b"2");
    assert_eq!(
        e.commit(&id, "  ".into(), None, None).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let bad_author = Identity {
        name: "x>".into(),
        email: "e".into(),
    };
    assert_eq!(
        e.commit(&id, "m".into(), Some(bad_author), None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

#[tokio::test]
async fn fork_shares_the_parents_frozen_tree() {
    // A fork records a reference: the child's base is the parent's frozen tree (its cost is
    // measured in bench/, fork).
    let e = engine().await;
    let id = empty_session(&e).await;
    for i in 0..200 {
        put(&e, &id, &format!("d{}/f{i}", i % 7), format!("{i}").as_bytes()).await;
    }
    let cp = e.checkpoint(&id, None).await.unwrap();
    let child = e
        .create_session(
            SessionSource::Session {
                id: id.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(child.base_tree, cp.checkpoint.tree);
    assert_eq!(e.current_tree(&child.id).await.unwrap(), cp.checkpoint.tree);
}

#[tokio::test]
async fn events_record_mutations() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "x", b"1").await;
    e.delete(&id, "x", false).await.unwrap();
    let kinds: Vec<_> = e
        .events(&id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|ev| (ev.kind.as_str().to_owned(), ev.path))
        .collect();
    assert_eq!(
        kinds,
        [
            ("created".into(), None),
            ("write".into(), Some("x".into())),
            ("delete".into(), Some("x".into()))
        ]
    );
}

#[tokio::test]
async fn concurrent_writers_on_many_sessions() {
    let e = engine().await;
    let mut tasks = Vec::new();
    for s in 0..8 {
        let e = e.engine.clone();
        tasks.push(tokio::spawn(async move {
            let id = empty_session(&e).await;
            for i in 0..25 {
                put(&e, &id, &format!("f{i}"), format!("{s}-{i}").as_bytes()).await;
            }
            (id, s)
        }));
    }
    for t in tasks {
        let (id, s) = t.await.unwrap();
        for i in 0..25 {
            assert_eq!(get(&e, &id, &format!("f{i}")).await, format!("{s}-{i}").as_bytes());
        }
    }
}

#[tokio::test]
async fn tokens_are_scoped_hashed_and_revocable() {
    let e = engine().await;
    let a = empty_session(&e).await;
    let b = empty_session(&e).await;
    let (rec, secret) = e
        .create_token(BTreeSet::from([a.clone()]), aether_core::Access::Read, "ci".into())
        .await
        .unwrap();
    assert!(secret.starts_with("aet_") && secret.len() > 60);
    let found = e.verify_token(&secret).await.unwrap().expect("token verifies");
    assert_eq!(found.id, rec.id);
    assert!(found.allows(&a, false));
    assert!(!found.allows(&a, true), "read scope cannot write");
    assert!(!found.allows(&b, false), "other sessions are out of scope");
    assert!(e.verify_token("aet_wrong").await.unwrap().is_none());
    assert_eq!(e.list_tokens().await.unwrap().len(), 1);
    e.revoke_token(&rec.id).await.unwrap();
    assert!(e.verify_token(&secret).await.unwrap().is_none());
    assert_eq!(e.revoke_token(&rec.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    let missing: aether_core::SessionId = "00000000000000000000000000".parse().unwrap();
    let err = e
        .create_token(BTreeSet::from([missing]), aether_core::Access::Write, String::new())
        .await;
    assert_eq!(err.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn commit_changes_lists_changed_paths() {
    let e = engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "keep", b"1").await;
    put(&e, &id, "dir/edit", b"1").await;
    put(&e, &id, "gone", b"1").await;
    e.commit(&id, "one".into(), None, None).await.unwrap();
    put(&e, &id, "dir/edit", b"2").await;
    put(&e, &id, "dir/sub/new", b"n").await;
    e.delete(&id, "gone", false).await.unwrap();
    let c = e.commit(&id, "two".into(), None, None).await.unwrap();
    let changes: Vec<_> = e
        .commit_changes(&id, &c.id.to_hex().to_string())
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.change))
        .collect();
    use aether_core::diff::ChangeKind::*;
    assert_eq!(
        changes,
        [
            ("dir/edit".to_string(), Modified),
            ("dir/sub/new".to_string(), Added),
            ("gone".to_string(), Deleted)
        ]
    );
}

#[tokio::test]
async fn export_then_import_round_trips_files_modes_links_and_empty_dirs() {
    let e = small_chunk_engine().await;
    let id = empty_session(&e).await;
    put(&e, &id, "a/b.txt", b"hello").await;
    put(&e, &id, "big.bin", &noise(4, 30_000)).await;
    e.chmod(&id, "a/b.txt", 0o755).await.unwrap();
    e.mkdir(&id, "empty", false).await.unwrap();
    e.symlink(&id, "link", "a/b.txt").await.unwrap();
    for gzip in [false, true] {
        let path = e.dir.path().join(format!("out-{gzip}.tar"));
        let file = std::fs::File::create(&path).unwrap();
        e.export_tar(&id, None, gzip, file).await.unwrap();
        let imported = e
            .import_tar(tokio::fs::File::open(&path).await.unwrap(), Default::default())
            .await
            .unwrap();
        assert_eq!(imported.base_tree, e.current_tree(&id).await.unwrap(), "gzip={gzip}");
        assert_eq!(e.stat(&imported.id, "a/b.txt", None).await.unwrap().mode, 0o755);
        assert_eq!(
            e.stat(&imported.id, "empty", None).await.unwrap().kind,
            aether_core::FileKind::Dir
        );
        assert_eq!(e.readlink(&imported.id, "link", None).await.unwrap(), "a/b.txt");
    }
    // The system tar reads what we write.
    let listing = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(e.dir.path().join("out-false.tar"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains("a/b.txt") && text.contains("link -> a/b.txt") && text.contains("empty/"),
        "{text}"
    );
}

#[tokio::test]
async fn a_commit_id_of_another_session_is_not_a_revision_here() {
    let e = engine().await;
    let a = empty_session(&e).await;
    let b = empty_session(&e).await;
    put(&e, &b, "secret", b"b's data").await;
    let cp = e.checkpoint(&b, None).await.unwrap();
    let foreign = cp.checkpoint.commit.to_hex().to_string();
    assert_eq!(
        e.read(&a, "secret", 0, None, Some(&foreign)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(e.restore(&a, &foreign).await.unwrap_err().kind(), ErrorKind::NotFound);
    let fork = e
        .create_session(
            SessionSource::Session {
                id: a.clone(),
                at: Some(foreign.clone()),
            },
            Default::default(),
        )
        .await;
    assert_eq!(fork.unwrap_err().kind(), ErrorKind::NotFound);
    // In its own session, and in a fork that descends from it, the id works.
    assert_eq!(
        e.read(&b, "secret", 0, None, Some(&foreign)).await.unwrap(),
        b"b's data"
    );
    let child = e
        .create_session(
            SessionSource::Session {
                id: b.clone(),
                at: None,
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        e.read(&child.id, "secret", 0, None, Some(&foreign)).await.unwrap(),
        b"b's data"
    );
}

/// Every change of a session moves its `updated_at` forward, durably (listed from the store and
/// after a reopen); reading it, and forking it (which freezes its overlay), do not.
#[tokio::test]
async fn every_change_of_a_session_moves_updated_at() {
    let e = engine().await;
    let id = empty_session(&e).await;
    let mut last = e.get_session(&id).await.unwrap().updated_at;

    async fn moved(e: &aether_core::Engine, id: &aether_core::SessionId, last: &mut i64, what: &str) {
        let now = e.get_session(id).await.unwrap().updated_at;
        assert!(now > *last, "{what}: updated_at stayed at {last} (now {now})");
        let listed = e.list_sessions(&ListFilter::default(), &Page::default()).await.unwrap();
        let stored = listed.iter().find(|s| &s.id == id).unwrap().updated_at;
        assert_eq!(stored, now, "{what}: the store holds what the engine shows");
        *last = now;
    }
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));

    tick().await;
    put(&e, &id, "a.txt", b"one").await;
    moved(&e, &id, &mut last, "write").await;
    tick().await;
    e.write_at(&id, "a.txt", 1, b"X".to_vec()).await.unwrap();
    moved(&e, &id, &mut last, "write at").await;
    tick().await;
    e.mkdir(&id, "d", false).await.unwrap();
    moved(&e, &id, &mut last, "mkdir").await;
    tick().await;
    e.chmod(&id, "a.txt", 0o600).await.unwrap();
    moved(&e, &id, &mut last, "chmod").await;
    tick().await;
    e.rename(&id, "a.txt", "d/b.txt").await.unwrap();
    moved(&e, &id, &mut last, "rename").await;
    tick().await;
    let cp = e.checkpoint(&id, None).await.unwrap();
    moved(&e, &id, &mut last, "checkpoint").await;
    tick().await;
    e.delete(&id, "d/b.txt", false).await.unwrap();
    moved(&e, &id, &mut last, "delete").await;
    tick().await;
    let ops = vec![aether_core::BatchOp::Mkdir {
        path: "e".into(),
        parents: false,
    }];
    e.apply_batch(&id, ops).await.unwrap();
    moved(&e, &id, &mut last, "batch").await;
    tick().await;
    e.commit(&id, "a commit".into(), None, None).await.unwrap();
    moved(&e, &id, &mut last, "commit").await;
    tick().await;
    e.restore(&id, &cp.checkpoint.number.to_string()).await.unwrap();
    moved(&e, &id, &mut last, "restore").await;
    tick().await;
    let labels = BTreeMap::from([("k".to_string(), Some("v".to_string()))]);
    e.update_session(
        &id,
        SessionUpdate {
            labels,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    moved(&e, &id, &mut last, "label update").await;

    // Reads and forks leave it alone.
    tick().await;
    put(&e, &id, "c.txt", b"c").await;
    last = e.get_session(&id).await.unwrap().updated_at;
    tick().await;
    e.stat(&id, "c.txt", None).await.unwrap();
    e.list(&id, "", true, None).await.unwrap();
    let fork = SessionSource::Session {
        id: id.clone(),
        at: None,
    };
    e.create_session(fork, CreateOptions::default()).await.unwrap();
    assert_eq!(
        e.get_session(&id).await.unwrap().updated_at,
        last,
        "a read or a fork is no change"
    );

    // Durable: a reopened engine shows the same value.
    let TestEngine { engine, dir } = e;
    drop(engine);
    let e = aether_core::Engine::open(config(dir.path())).await.unwrap();
    assert_eq!(e.get_session(&id).await.unwrap().updated_at, last);
}

/// Every change made through a handle acting for a caller is recorded with that caller's
/// origin, whatever path it takes (a write, a batch, a fork, a new session); the engine's own
/// handle records the server.
#[tokio::test]
async fn events_carry_the_origin_of_the_handle_that_made_them() {
    use aether_core::{BatchOp, EventKind, Origin, Surface};
    let e = engine().await;
    let mount = Origin {
        surface: Surface::Mount,
        principal: "token:t9".into(),
        mount: Some("m-42".into()),
    };
    let rest = Origin {
        surface: Surface::Rest,
        principal: "admin".into(),
        mount: None,
    };
    let as_mount = e.acting_for(mount.clone());
    let as_rest = e.acting_for(rest.clone());
    assert_eq!(e.origin(), &Origin::server());

    let s = as_rest
        .create_session(SessionSource::Empty, Default::default())
        .await
        .unwrap();
    as_mount
        .write_bytes(&s.id, "a", b"1".to_vec(), Default::default())
        .await
        .unwrap();
    as_mount.write_at(&s.id, "a", 1, b"2".to_vec()).await.unwrap();
    as_rest.chmod(&s.id, "a", 0o600).await.unwrap();
    as_mount
        .apply_batch(
            &s.id,
            vec![BatchOp::Mkdir {
                path: "d".into(),
                parents: false,
            }],
        )
        .await
        .unwrap();
    e.mkdir(&s.id, "e", false).await.unwrap();
    let from = SessionSource::Session {
        id: s.id.clone(),
        at: None,
    };
    let child = as_mount.create_session(from, Default::default()).await.unwrap();

    let seen: Vec<_> = e
        .events(&s.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|ev| (ev.kind, ev.origin))
        .collect();
    assert_eq!(
        seen,
        [
            (EventKind::Created, Some(rest.clone())),
            (EventKind::Write, Some(mount.clone())),
            (EventKind::Write, Some(mount.clone())),
            (EventKind::Chmod, Some(rest)),
            (EventKind::Mkdir, Some(mount.clone())),
            (EventKind::Mkdir, Some(Origin::server())),
            (EventKind::Forked, Some(mount.clone())),
        ]
    );
    let created = e.events(&child.id, 0, 1).await.unwrap();
    assert_eq!(
        (created[0].kind, created[0].origin.clone()),
        (EventKind::Created, Some(mount))
    );
}
