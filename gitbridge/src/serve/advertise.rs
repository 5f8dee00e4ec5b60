//! What the server says first: the v2 capability advertisement, the v0 ref advertisement with
//! its capabilities, and v2 `ls-refs`.

use aether_core::git_view::GitRef;

use super::pktline;
use super::request::LsRefsArgs;

pub const AGENT: &str = concat!("agent=aetherfs/", env!("CARGO_PKG_VERSION"));

/// Protocol v2 capabilities, ending in a flush.
pub fn v2_capabilities() -> Vec<u8> {
    let mut out = Vec::new();
    for line in [
        "version 2",
        AGENT,
        "ls-refs",
        "fetch=shallow filter sideband-all",
        "server-option",
        "object-format=sha1",
    ] {
        pktline::text(&mut out, line);
    }
    pktline::flush(&mut out);
    out
}

fn v0_capabilities(refs: &[GitRef]) -> String {
    let mut caps = vec![
        "multi_ack_detailed",
        "side-band-64k",
        "side-band",
        "ofs-delta",
        "thin-pack",
        "shallow",
        "deepen-since",
        "deepen-relative",
        "no-done",
        "no-progress",
        "filter",
        "allow-tip-sha1-in-want",
        "allow-reachable-sha1-in-want",
        "object-format=sha1",
        AGENT,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    if let Some(target) = refs
        .iter()
        .find(|r| r.name == "HEAD")
        .and_then(|r| r.symref_target.as_ref())
    {
        caps.push(format!("symref=HEAD:{target}"));
    }
    caps.join(" ")
}

/// The v0/v1 ref advertisement (as over smart HTTP: the `# service=` header first, then refs,
/// capabilities after a NUL on the first line, peeled tags as `^{}` lines).
pub fn v0_refs(refs: &[GitRef]) -> Vec<u8> {
    let mut out = Vec::new();
    pktline::text(&mut out, "# service=git-upload-pack");
    pktline::flush(&mut out);
    let caps = v0_capabilities(refs);
    if refs.is_empty() {
        let zero = "0".repeat(40);
        pktline::text(&mut out, &format!("{zero} capabilities^{{}}\0{caps}"));
    }
    for (i, r) in refs.iter().enumerate() {
        if i == 0 {
            pktline::text(&mut out, &format!("{} {}\0{caps}", r.target, r.name));
        } else {
            pktline::text(&mut out, &format!("{} {}", r.target, r.name));
        }
        if let Some(p) = r.peeled {
            pktline::text(&mut out, &format!("{p} {}^{{}}", r.name));
        }
    }
    pktline::flush(&mut out);
    out
}

/// The answer to `ls-refs`.
pub fn ls_refs(refs: &[GitRef], args: &LsRefsArgs) -> Vec<u8> {
    let mut out = Vec::new();
    for r in refs {
        if !args.prefixes.is_empty() && !args.prefixes.iter().any(|p| r.name.starts_with(p.as_str())) {
            continue;
        }
        let mut line = format!("{} {}", r.target, r.name);
        if args.symrefs
            && let Some(t) = &r.symref_target
        {
            line.push_str(&format!(" symref-target:{t}"));
        }
        if args.peel
            && let Some(p) = r.peeled
        {
            line.push_str(&format!(" peeled:{p}"));
        }
        pktline::text(&mut out, &line);
    }
    pktline::flush(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gix::ObjectId;

    fn oid(c: char) -> ObjectId {
        ObjectId::from_hex(c.to_string().repeat(40).as_bytes()).unwrap()
    }

    fn refs() -> Vec<GitRef> {
        vec![
            GitRef {
                name: "HEAD".into(),
                target: oid('a'),
                peeled: None,
                symref_target: Some("refs/heads/main".into()),
            },
            GitRef {
                name: "refs/heads/main".into(),
                target: oid('a'),
                peeled: None,
                symref_target: None,
            },
            GitRef {
                name: "refs/tags/v1".into(),
                target: oid('b'),
                peeled: Some(oid('a')),
                symref_target: None,
            },
        ]
    }

    #[test]
    fn ls_refs_filters_by_prefix_and_annotates() {
        let args = LsRefsArgs {
            symrefs: true,
            peel: true,
            prefixes: vec!["HEAD".into(), "refs/tags/".into()],
        };
        let text = String::from_utf8(ls_refs(&refs(), &args)).unwrap();
        assert!(text.contains(&format!("{} HEAD symref-target:refs/heads/main\n", oid('a'))));
        assert!(text.contains(&format!("{} refs/tags/v1 peeled:{}\n", oid('b'), oid('a'))));
        assert!(!text.contains(&format!("{} refs/heads/main\n", oid('a'))));
        assert!(text.ends_with("0000"));
    }

    #[test]
    fn v0_advertisement_puts_capabilities_on_the_first_line() {
        let text = String::from_utf8(v0_refs(&refs())).unwrap();
        assert!(text.starts_with("001e# service=git-upload-pack\n0000"));
        assert!(text.contains(&format!("{} HEAD\0multi_ack_detailed", oid('a'))));
        assert!(text.contains("symref=HEAD:refs/heads/main"));
        assert!(text.contains(&format!("{} refs/tags/v1^{{}}\n", oid('a'))));
        let empty = String::from_utf8(v0_refs(&[])).unwrap();
        assert!(empty.contains("capabilities^{}\0"));
    }
}
