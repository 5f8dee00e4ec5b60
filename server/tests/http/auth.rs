use reqwest::Method;
use serde_json::json;

use crate::common::*;

async fn token(s: &Server, sessions: &[&str], access: &str) -> String {
    let (status, body) = s
        .json(
            Method::POST,
            "/v1/tokens",
            json!({"sessions": sessions, "access": access}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_auth_matrix() {
    let s = server().await;
    let mine = s.new_session().await;
    let other = s.new_session().await;
    s.put(&mine, "f", b"data").await;
    let read = token(&s, &[&mine], "read").await;
    let write = token(&s, &[&mine], "write").await;
    let file = format!("/v1/sessions/{mine}/files/f");

    // No token, wrong token: 401 with a challenge.
    let resp = s.anon(Method::GET, &file).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"aether\"");
    assert_error(&split(resp).await, 401, "unauthorized");
    let resp = s
        .anon(Method::GET, &file)
        .bearer_auth("aet_wrong")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 401, "unauthorized");
    let resp = s.anon(Method::GET, "/v1/nope").send().await.unwrap();
    assert_eq!(resp.status(), 401, "unknown routes need a token too");

    // Health needs none.
    assert_eq!(s.anon(Method::GET, "/healthz").send().await.unwrap().status(), 200);
    assert_eq!(s.anon(Method::GET, "/readyz").send().await.unwrap().status(), 401);

    // Read scope: reads, cannot write.
    let resp = s.anon(Method::GET, &file).bearer_auth(&read).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"data");
    let resp = s
        .anon(Method::PUT, &file)
        .bearer_auth(&read)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 403, "forbidden");
    // Write scope: writes its session, not another.
    let resp = s
        .anon(Method::PUT, &file)
        .bearer_auth(&write)
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .anon(Method::GET, &format!("/v1/sessions/{other}/tree"))
        .bearer_auth(&write)
        .send()
        .await
        .unwrap();
    assert_error(&split(resp).await, 403, "forbidden");
    // Admin-only operations.
    for (method, path) in [
        (Method::POST, "/v1/tokens"),
        (Method::GET, "/v1/tokens"),
        (Method::POST, "/v1/sessions"),
    ] {
        let resp = s
            .anon(method, path)
            .bearer_auth(&write)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_error(&split(resp).await, 403, "forbidden");
    }
    // Listing shows only the sessions in scope.
    let resp = s
        .anon(Method::GET, "/v1/sessions")
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let (_, list) = split(resp).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    // Git-style basic auth: the token is the password.
    let resp = s
        .anon(Method::GET, &file)
        .basic_auth("git", Some(&read))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Revocation takes effect at once.
    let (_, tokens) = s.call(Method::GET, "/v1/tokens").await;
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2);
    assert!(tokens["tokens"][0].get("token").is_none(), "secrets are never listed");
    let read_id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["access"] == "read")
        .unwrap()["id"]
        .as_str()
        .unwrap();
    let (status, _) = s.call(Method::DELETE, &format!("/v1/tokens/{read_id}")).await;
    assert_eq!(status, 204);
    let resp = s.anon(Method::GET, &file).bearer_auth(&read).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_error(
        &s.call(Method::DELETE, &format!("/v1/tokens/{read_id}")).await,
        404,
        "not_found",
    );
    assert_error(
        &s.json(
            Method::POST,
            "/v1/tokens",
            json!({"sessions": [mine], "access": "root"}),
        )
        .await,
        422,
        "invalid_argument",
    );
}
