//! Every request has an id: the client's `x-request-id` (when it can be logged as it is) or a
//! new one, returned in the response and carried by every log line of the request, in a real
//! aetherd's JSON log.

use crate::process::Aetherd;

const HEADER: &str = "x-request-id";

/// The log's JSON lines whose request span has id `id`.
fn lines_of(log: &str, id: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["id"] == id || v["spans"].as_array().is_some_and(|s| s.iter().any(|s| s["id"] == id)))
        .collect()
}

#[tokio::test]
async fn a_request_id_is_returned_and_in_every_log_line_of_its_request() {
    let d = Aetherd::start(&["--log-level", "debug", "--log-format", "json"]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/sessions", d.base()))
        .bearer_auth(&d.admin)
        .header(HEADER, "ci-create-7f3a")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.headers()[HEADER], "ci-create-7f3a");
    let body: serde_json::Value = created.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let put = client
        .put(format!("{}/v1/sessions/{id}/files/a.txt", d.base()))
        .bearer_auth(&d.admin)
        .header(HEADER, "ci-put-9b1c")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (put.status().as_u16(), &put.headers()[HEADER]),
        (200, &"ci-put-9b1c".parse().unwrap())
    );
    // One a log cannot carry as it is gets a new id instead.
    let odd = client
        .get(format!("{}/v1/sessions/{id}", d.base()))
        .bearer_auth(&d.admin)
        .header(HEADER, "has spaces, and \"quotes\"")
        .send()
        .await
        .unwrap();
    let given = odd.headers()[HEADER].to_str().unwrap().to_owned();
    assert!(
        given.len() == 32 && given.bytes().all(|b| b.is_ascii_hexdigit()),
        "{given}"
    );
    let plain = client.get(format!("{}/healthz", d.base())).send().await.unwrap();
    assert_ne!(
        plain.headers()[HEADER].to_str().unwrap(),
        given,
        "each request its own id"
    );

    // The request's own log lines (its start and end at least) carry the id it was sent.
    let mut found = Vec::new();
    for _ in 0..50 {
        found = lines_of(&d.log(), "ci-put-9b1c");
        if found.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = d.log();
    assert!(found.len() >= 2, "{} lines with the id in:\n{log}", found.len());
    assert!(
        found
            .iter()
            .all(|l| l["span"]["path"] == format!("/v1/sessions/{id}/files/a.txt")),
        "{found:?}"
    );
    assert!(
        !lines_of(&log, &given).is_empty(),
        "the generated id is logged too:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a log that is not a terminal"
    );
}
