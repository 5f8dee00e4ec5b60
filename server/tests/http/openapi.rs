use reqwest::Method;

use crate::common::*;

/// The document is OpenAPI 3, and every operation it lists is routed (no "no route" 404).
#[tokio::test]
async fn openapi_is_complete_and_routed() {
    let s = server().await;
    let id = s.new_session().await;
    let (status, doc) = s.call(Method::GET, "/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete = path
                .replace("{id}", &id)
                .replace("{path}", "some/file")
                .replace("{oid}", &"0".repeat(40))
                .replace("{token_id}", "tok_x");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = split(s.req(m, &concrete).send().await.unwrap()).await;
            let unrouted = status == 404 && body["error"]["message"].as_str().unwrap_or("").starts_with("no route");
            assert!(
                !unrouted && status != 405,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    assert!(operations >= 30, "only {operations} operations documented");
    for schema in ["Session", "Stat", "Checkpoint", "Commit", "ErrorBody", "Token"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
}
