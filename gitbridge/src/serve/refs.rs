//! The refs a session's git remote advertises: the engine's view of the session's refs, plus the
//! session's branch when the namespace holds no ref for it yet (a fork, or a session that has
//! checkpoints but no commit): `refs/heads/<branch>` at what `HEAD` points to, and `HEAD` a
//! symbolic ref to it. A clone then checks out the branch the API reports (`branch`) instead of
//! a detached `HEAD`. Nothing is written: the ref exists in the advertisement only, naming a
//! commit `HEAD` already made reachable.

use aether_core::git_view::GitRef;
use aether_core::{Engine, SessionId};

use super::ServeError;

/// The refs to advertise for session `id` (see the module docs).
pub(crate) async fn client_refs(engine: &Engine, id: &SessionId) -> Result<Vec<GitRef>, ServeError> {
    let refs = engine.git_refs(id).await?;
    let branch = engine.get_session(id).await?.branch;
    Ok(with_branch(refs, &branch))
}

/// `refs` with `refs/heads/<branch>` and a symbolic `HEAD`, when `HEAD` is detached and the
/// branch has no ref of its own.
fn with_branch(mut refs: Vec<GitRef>, branch: &str) -> Vec<GitRef> {
    let name = format!("refs/heads/{branch}");
    if branch.is_empty() || refs.iter().any(|r| r.name == name) {
        return refs;
    }
    let Some(head) = refs.iter_mut().find(|r| r.name == "HEAD" && r.symref_target.is_none()) else {
        return refs;
    };
    head.symref_target = Some(name.clone());
    let target = head.target;
    // `HEAD` first, the rest sorted by name, as the engine lists them.
    let at = refs
        .iter()
        .position(|r| r.name != "HEAD" && r.name > name)
        .unwrap_or(refs.len());
    refs.insert(
        at,
        GitRef {
            name,
            target,
            peeled: None,
            symref_target: None,
        },
    );
    refs
}

#[cfg(test)]
mod tests {
    use gix::ObjectId;

    use super::*;

    fn r(name: &str, c: char, symref: Option<&str>) -> GitRef {
        GitRef {
            name: name.into(),
            target: ObjectId::from_hex(c.to_string().repeat(40).as_bytes()).unwrap(),
            peeled: None,
            symref_target: symref.map(Into::into),
        }
    }

    fn names(refs: &[GitRef]) -> Vec<(&str, Option<&str>)> {
        refs.iter()
            .map(|r| (r.name.as_str(), r.symref_target.as_deref()))
            .collect()
    }

    #[test]
    fn a_detached_head_gets_the_sessions_branch() {
        let refs = vec![
            r("HEAD", 'a', None),
            r("refs/aether/live", 'b', None),
            r("refs/tags/v1", 'c', None),
        ];
        let out = with_branch(refs, "main");
        assert_eq!(
            names(&out),
            [
                ("HEAD", Some("refs/heads/main")),
                ("refs/aether/live", None),
                ("refs/heads/main", None),
                ("refs/tags/v1", None),
            ]
        );
        assert_eq!(out[2].target, out[0].target);
    }

    #[test]
    fn existing_branches_and_empty_sessions_are_left_alone() {
        let with_branch_ref = vec![r("HEAD", 'a', Some("refs/heads/main")), r("refs/heads/main", 'a', None)];
        assert_eq!(names(&with_branch(with_branch_ref, "main")).len(), 2);
        assert!(with_branch(Vec::new(), "main").is_empty());
        let other = vec![r("HEAD", 'a', None), r("refs/heads/main", 'b', None)];
        assert_eq!(
            names(&with_branch(other, "main")),
            [("HEAD", None), ("refs/heads/main", None)]
        );
    }
}
