//! Tar imports over HTTP with archives a real user produces: a `.tar.gz` whose gzip members are
//! damaged, one cut short, and GNU tar's PAX sparse files.

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use reqwest::Method;

use crate::common::*;
use crate::hostile_inputs::gzip;

/// A tar with one file `name` of `data`, without the end-of-archive blocks when `last` is false.
fn tar_of(name: &str, data: &[u8], last: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    builder.append_data(&mut h, name, data).unwrap();
    let mut out = builder.into_inner().unwrap();
    if !last {
        out.truncate(out.len() - 1024);
    }
    out
}

fn noise(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

async fn import(s: &Server, body: Vec<u8>) -> (u16, serde_json::Value) {
    split(
        s.req(Method::POST, "/v1/sessions/import")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_tar_gz_with_a_damaged_or_missing_member_is_refused_and_creates_nothing() {
    let s = server().await;
    let first = gzip(&tar_of("a.bin", &noise(200_000, 1), false));
    let second = gzip(&tar_of("b.bin", &noise(200_000, 2), true));
    // Two gzip members, as `cat a.gz b.gz` makes: whole, they import both files.
    let whole: Vec<u8> = [first.clone(), second.clone()].concat();
    let (status, body) = import(&s, whole).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(s.get(&id, "b.bin").await, noise(200_000, 2));
    let (status, body) = s.call(Method::DELETE, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 204, "{body}");

    let mut second_bad_crc = second.clone();
    let crc = second_bad_crc.len() - 8;
    second_bad_crc[crc] ^= 0x10;
    // A byte of the compressed data of the second member's file, not its trailer.
    let mut second_bad_data = second.clone();
    let middle = second_bad_data.len() / 2;
    second_bad_data[middle] ^= 0x55;
    let cases = [
        ("a member with a wrong CRC", [first.clone(), second_bad_crc].concat()),
        ("a member with damaged data", [first.clone(), second_bad_data].concat()),
        (
            "a member cut short",
            [first.clone(), second[..second.len() - 4].to_vec()].concat(),
        ),
        (
            "a stream cut inside a member",
            [first.clone(), second[..second.len() / 3].to_vec()].concat(),
        ),
    ];
    for (what, body) in cases {
        let got = import(&s, body).await;
        assert!(matches!(got.0, 400 | 413 | 422), "{what}: {got:?}");
        assert!(
            got.1["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}: {got:?}"
        );
    }
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert!(
        list["sessions"].as_array().unwrap().is_empty(),
        "a refused import created a session: {list}"
    );
}

/// GNU tar, required with `CI=true`.
fn gnu_tar() -> Option<&'static str> {
    aether_test_support::prereq::gnu_tar("pax_sparse_files_import_with_their_real_bytes").then_some("tar")
}

#[tokio::test]
async fn pax_sparse_files_import_with_their_real_bytes() {
    let Some(tar) = gnu_tar() else { return };
    let s = server().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // 4 MiB with two islands of data in holes.
    let mut f = std::fs::File::create(src.join("sp.bin")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(b"first island").unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(&noise(10_000, 7)).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    let expected = std::fs::read(src.join("sp.bin")).unwrap();
    for version in ["0.0", "0.1", "1.0"] {
        let archive = work.path().join(format!("sp-{version}.tar"));
        let out = Command::new(tar)
            .args(["--format=pax", &format!("--sparse-version={version}"), "-S", "-C"])
            .arg(&src)
            .arg("-cf")
            .arg(&archive)
            .arg("sp.bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&archive).unwrap();
        assert!(
            bytes.windows(10).any(|w| w == b"GNU.sparse"),
            "tar {version} did not store the file sparse"
        );
        for body in [bytes.clone(), gzip(&bytes)] {
            let (status, session) = import(&s, body).await;
            assert_eq!(status, 201, "{version}: {session}");
            let id = session["id"].as_str().unwrap();
            let (status, listing) = s.call(Method::GET, &format!("/v1/sessions/{id}/tree")).await;
            assert_eq!(status, 200, "{listing}");
            let names: Vec<&str> = listing["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["sp.bin"], "{version}: {listing}");
            assert!(s.get(id, "sp.bin").await == expected, "{version}: the bytes differ");
        }
    }
}

/// Archives whose headers claim far more than they send (issue 34): a symlink target over
/// 4,096 bytes is refused whether its pax header is read (64 KiB) or refused by its size
/// alone (32 MiB); a GNU long name claiming gigabytes is refused before a byte of it is
/// buffered; sparse entries claiming a GiB import as the holes they are. Nothing is created
/// by a refusal.
#[tokio::test]
async fn archives_claiming_more_than_they_send_get_a_clear_error_or_their_sparse_size() {
    use crate::hostile_inputs::{long_name_claim_tar, sparse_tar, symlink_target_tar_gz};
    let s = server().await;
    for (len, what) in [(64usize << 10, "4096"), (32 << 20, "pax header")] {
        let got = import(&s, symlink_target_tar_gz(len)).await;
        assert_error(&got, 422, "invalid_argument");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(what), "a target of {len} bytes: {message}");
    }
    let got = import(&s, long_name_claim_tar(2_600_000_000, 64 << 10)).await;
    assert_error(&got, 422, "invalid_argument");
    assert!(
        got.1["error"]["message"].as_str().unwrap().contains("long name"),
        "{}",
        got.1
    );
    let (_, list) = s.call(Method::GET, "/v1/sessions").await;
    assert!(
        list["sessions"].as_array().unwrap().is_empty(),
        "a refused import created a session: {list}"
    );

    let tail: [u8; 512] = std::array::from_fn(|i| (i % 7) as u8 + 1);
    let (status, session) = import(&s, sparse_tar(2, 1 << 30, &tail)).await;
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap();
    let (_, st) = s.call(Method::GET, &format!("/v1/sessions/{id}/stat/s1")).await;
    assert_eq!(st["size"].as_u64(), Some(1 << 30), "{st}");
    let resp = s
        .req(Method::GET, &format!("/v1/sessions/{id}/files/s1"))
        .header("range", format!("bytes={}-", (1u64 << 30) - 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let end = resp.bytes().await.unwrap();
    assert_eq!(end[..512], [0u8; 512], "a hole reads as zeros");
    assert_eq!(end[512..], tail, "the data after the hole");
}
