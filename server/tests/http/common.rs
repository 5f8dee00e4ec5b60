use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

use aether_server::config::Config;

pub struct Server {
    pub base: String,
    pub admin: String,
    pub client: Client,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn server() -> Server {
    server_with(|_| {}).await
}

pub async fn server_with(f: impl FnOnce(&mut Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    f(&mut config);
    let bound = aether_server::bind(&config).await.unwrap();
    let base = format!("http://{}", bound.addr);
    let admin = bound.admin_token.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    Server {
        base,
        admin,
        client: Client::new(),
        _dir: dir,
        shutdown: Some(tx),
    }
}

impl Server {
    /// The server's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
    }

    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub async fn json(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        let resp = self.req(method, path).json(&body).send().await.unwrap();
        split(resp).await
    }

    pub async fn call(&self, method: Method, path: &str) -> (u16, Value) {
        split(self.req(method, path).send().await.unwrap()).await
    }

    pub async fn new_session(&self) -> String {
        let (status, body) = self.json(Method::POST, "/v1/sessions", serde_json::json!({})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A new read-only token for session `id` (made over REST); returns its secret.
    pub async fn read_token(&self, id: &str) -> String {
        let body = serde_json::json!({"sessions": [id], "access": "read"});
        let (status, tok) = self.json(Method::POST, "/v1/tokens", body).await;
        assert_eq!(status, 201, "{tok}");
        tok["token"].as_str().unwrap().to_owned()
    }

    pub async fn put(&self, id: &str, path: &str, data: &[u8]) -> Value {
        let resp = self
            .req(Method::PUT, &format!("/v1/sessions/{id}/files/{path}"))
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        let (status, body) = split(resp).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn get(&self, id: &str, path: &str) -> Vec<u8> {
        let resp = self
            .req(Method::GET, &format!("/v1/sessions/{id}/files/{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }
}

pub async fn split(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Assert an API error: status and code, with the documented shape.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

/// Send a request line exactly as given (no URL normalization, like `curl --path-as-is`);
/// returns the status code.
pub async fn raw_status(s: &Server, method: &str, target: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.admin,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}
