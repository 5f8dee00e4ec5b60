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
    // Every reference resolves: the usual way a generated document is invalid.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {r}");
    }
    for op in paths.values().flat_map(|item| item.as_object().unwrap().values()) {
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "operation without responses: {op}"
        );
    }
    for schema in ["Session", "Stat", "Checkpoint", "Commit", "ErrorBody", "Token"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
