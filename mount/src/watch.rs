//! Following the session's changes: the server's watch stream, reconnected from the last event
//! seen, feeds every change made elsewhere to the file system (which invalidates what it cached).

use std::time::Duration;

use aether_proto::v1 as pb;

use crate::events::RemoteEvent;
use crate::fs::AetherFs;
use aether_proto::remote::Remote;

pub(crate) type Watch = std::result::Result<(tonic::Streaming<pb::Event>, Option<i64>), tonic::Status>;

/// Open the session's watch stream after `cursor`, or from now; returns the stream and the
/// cursor it starts after when the server says.
pub(crate) async fn open_watch(remote: &Remote, session: &str, cursor: Option<i64>) -> Watch {
    let req = pb::WatchEventsRequest {
        id: session.to_owned(),
        after_seq: cursor.unwrap_or(0),
        from_now: cursor.is_none(),
    };
    let resp = remote.sessions().watch_events(req).await?;
    let start = resp
        .metadata()
        .get("aether-cursor")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    Ok((resp.into_inner(), cursor.or(start)))
}

/// Feed the watch stream's events to the mount, reconnecting from the last event seen. While
/// disconnected the mount falls back to short TTLs; the replay after reconnecting invalidates
/// whatever changed meanwhile.
pub(crate) async fn watch_session(remote: Remote, session: String, fs: AetherFs, first: Watch) {
    let mut next = Some(first);
    let mut cursor: Option<i64> = None;
    loop {
        let opened = match next.take() {
            Some(w) => w,
            None => open_watch(&remote, &session, cursor).await,
        };
        match opened {
            Ok((mut stream, start)) => {
                cursor = cursor.or(start);
                fs.set_watching(true);
                loop {
                    match stream.message().await {
                        Ok(Some(event)) => {
                            cursor = Some(event.seq);
                            fs.apply_event(&RemoteEvent::from_message(&event));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "watch stream failed; reconnecting");
                            break;
                        }
                    }
                }
                fs.set_watching(false);
            }
            Err(e) => tracing::debug!(error = %e, "cannot open the watch stream; retrying"),
        }
        // Without a known cursor a reconnect "from now" could miss changes: replay everything.
        if cursor.is_none() {
            cursor = Some(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
