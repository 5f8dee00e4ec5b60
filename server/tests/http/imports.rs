//! Tar imports over HTTP with archives a real user produces: a `.tar.gz` whose gzip members are
//! damaged, one cut short, and GNU tar's PAX sparse files.

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

use reqwest::Method;

use crate::common::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

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
