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

/// Every `{name}` of a path is declared as an `in: path` parameter and nothing else is;
/// filters and pages are query parameters; every authenticated operation documents 400, 401
/// and 403; bodies the server accepts empty are not required.
#[tokio::test]
async fn every_operation_declares_its_parameters_errors_and_optional_bodies() {
    let s = server().await;
    let (status, doc) = s.call(Method::GET, "/v1/openapi.json").await;
    assert_eq!(status, 200);
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let templated: std::collections::BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let declared: std::collections::BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            if declared != templated {
                problems.push(format!(
                    "{method} {path}: path parameters {declared:?}, template {templated:?}"
                ));
            }
            for p in params.iter().filter(|p| p["in"] == "path") {
                if p["required"] != true {
                    problems.push(format!("{method} {path}: path parameter {} not required", p["name"]));
                }
            }
            let responses = op["responses"].as_object().unwrap();
            let needed: &[&str] = if path == "/healthz" {
                &["200"]
            } else {
                &["400", "401", "403"]
            };
            for status in needed {
                if !responses.contains_key(*status) {
                    problems.push(format!("{method} {path}: {status} undocumented"));
                }
            }
        }
    }
    let param_in = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["in"].as_str().unwrap_or("").to_owned())
    };
    for name in ["label", "state", "limit", "after"] {
        let got = param_in("/v1/sessions", "get", name);
        if got.as_deref() != Some("query") {
            problems.push(format!("GET /v1/sessions {name}: in {got:?}"));
        }
    }
    for name in ["label", "tag"] {
        let got = param_in("/v1/sessions/import", "post", name);
        if got.as_deref() != Some("query") {
            problems.push(format!("POST /v1/sessions/import {name}: in {got:?}"));
        }
    }
    for path in ["/v1/sessions/{id}/fork", "/v1/sessions/{id}/checkpoints"] {
        if doc["paths"][path]["post"]["requestBody"]["required"] == true {
            problems.push(format!(
                "POST {path}: an empty body is accepted but the body is required"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
