//! A thin HTTP client of the jobd API, with a Server-Sent Events reader
//! and a streaming download to a file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::{Method, Response};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach jobd at {url}: {source}")]
    Connection {
        /// The server.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The server's event stream is not valid UTF-8 or not Server-Sent
    /// Events.
    #[error("malformed event stream from jobd at {url}: {message}")]
    Stream {
        /// The server.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The server answered, but not with what the API promises.
    #[error("unexpected answer from jobd at {url}: {message}")]
    Answer {
        /// The server.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A download could not be written to its file.
    #[error("cannot write {}: {source}", path.display())]
    Save {
        /// The file (or directory) being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered with an error body.
    #[error("{status}: {body}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body, as JSON text.
        body: String,
    },
}

/// A client of one jobd server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8000`).
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(self, token: Option<String>) -> Client {
        Client { token, ..self }
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An [`ClientError::Answer`] saying what was wrong with an answer.
    pub fn unexpected(&self, message: String) -> ClientError {
        ClientError::Answer {
            url: self.base.clone(),
            message,
        }
    }

    fn connection(&self, source: reqwest::Error) -> ClientError {
        ClientError::Connection {
            url: self.base.clone(),
            source,
        }
    }

    /// Sends a request to `path` with the `query` pairs (percent-encoded by
    /// the URL type) and the JSON `body`; an error answer becomes
    /// [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Response, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut request = request.build().map_err(|e| self.connection(e))?;
        if !query.is_empty() {
            request.url_mut().query_pairs_mut().extend_pairs(query);
        }
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.connection(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Err(ClientError::Api { status, body })
    }

    /// Sends a request and returns the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.send(method, path, &[], body)
            .await?
            .json()
            .await
            .map_err(|e| self.connection(e))
    }

    /// Sends a GET with the `query` pairs and returns the JSON answer.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        self.send(Method::GET, path, query, None)
            .await?
            .json()
            .await
            .map_err(|e| self.connection(e))
    }

    /// Downloads `path` into the file `name` in `dir`, streaming: the body
    /// goes to a temporary `.NAME.*.part` in `dir`, renamed to `name` only
    /// once complete and synced, so `dir/name` is never a partial file (a
    /// failed download leaves nothing behind). `name` comes from the server
    /// and must be a plain file name. Returns the file's path and size.
    pub async fn download(
        &self,
        path: &str,
        dir: &Path,
        name: &str,
    ) -> Result<(PathBuf, u64), ClientError> {
        if name.starts_with('.') || Path::new(name).file_name() != Some(name.as_ref()) {
            return Err(self.unexpected(format!("{name:?} is not a plain file name")));
        }
        let response = self.send(Method::GET, path, &[], None).await?;
        let target = dir.join(name);
        let save = |source: std::io::Error| ClientError::Save {
            path: target.clone(),
            source,
        };
        let part = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            // As any new file: readable per the umask, not tempfile's 0600.
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(save)?;
        let mut file = tokio::fs::File::from_std(part.as_file().try_clone().map_err(save)?);
        let mut body = response.bytes_stream();
        let mut size = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.connection(e))?;
            file.write_all(&chunk).await.map_err(save)?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(save)?;
        file.sync_all().await.map_err(save)?;
        drop(file);
        part.persist(&target).map_err(|e| save(e.error))?;
        Ok((target, size))
    }

    /// Follows an SSE stream, calling `on_event(name, data)` for each event
    /// whose data is JSON, until the stream ends or `on_event` returns
    /// false. Parsed by `eventsource-stream`, which decodes UTF-8 across
    /// network chunks (a character may arrive split in two).
    pub async fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &Value) -> bool,
    ) -> Result<(), ClientError> {
        let response = self.send(Method::GET, path, &[], None).await?;
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| match e {
                EventStreamError::Transport(e) => self.connection(e),
                malformed => ClientError::Stream {
                    url: self.base.clone(),
                    message: malformed.to_string(),
                },
            })?;
            // Only JSON is sent as data; anything else is not for us.
            let Ok(data) = serde_json::from_str(&event.data) else {
                continue;
            };
            if !on_event(&event.event, &data) {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server side of [`a_character_split_across_network_chunks_arrives_whole`]:
    /// one SSE response, written in two parts that split a character of the
    /// second event, the second part only once the client has handled the
    /// first event (signalled on `first_seen`), so the split reaches it.
    async fn serve_split_event(
        listener: tokio::net::TcpListener,
        second: String,
        cut: usize,
        mut first_seen: tokio::sync::mpsc::UnboundedReceiver<()>,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (socket, _) = listener.accept().await?;
        let mut socket = BufReader::new(socket);
        let mut line = String::new();
        while socket.read_line(&mut line).await? > 2 {
            line.clear();
        }
        let mut first =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
              : keep-alive\n\nevent: job_update\ndata: {\"n\":1}\n\n"
                .to_vec();
        first.extend_from_slice(&second.as_bytes()[..cut]);
        socket.write_all(&first).await?;
        socket.flush().await?;
        first_seen.recv().await;
        socket.write_all(&second.as_bytes()[cut..]).await?;
        socket.flush().await
    }

    #[tokio::test]
    async fn a_character_split_across_network_chunks_arrives_whole() {
        let text = "Grüße ☺ 𝄞";
        let second = format!(
            "event: job_update\r\ndata: {}\r\n\r\n",
            serde_json::json!({"title": text})
        );
        // After the first of the three bytes of ☺.
        let cut = second.find('☺').unwrap() + 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (first_seen, first_seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(serve_split_event(listener, second, cut, first_seen_rx));
        let client = Client::new(&format!("http://{address}"));
        let mut events = Vec::new();
        client
            .follow("/stream", |name, data| {
                events.push((name.to_owned(), data.clone()));
                let _ = first_seen.send(());
                true
            })
            .await
            .unwrap();
        server.await.unwrap().unwrap();
        assert_eq!(
            events,
            [
                ("job_update".to_owned(), serde_json::json!({"n": 1})),
                ("job_update".to_owned(), serde_json::json!({"title": text})),
            ]
        );
    }

    /// Answers one request with `{"target": <its request target>}`.
    async fn echo_request_target(listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (socket, _) = listener.accept().await?;
        let mut socket = BufReader::new(socket);
        let mut request_line = String::new();
        socket.read_line(&mut request_line).await?;
        let mut line = String::new();
        while socket.read_line(&mut line).await? > 2 {
            line.clear();
        }
        let target = request_line.split(' ').nth(1).unwrap_or_default();
        let body = serde_json::json!({ "target": target }).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await?;
        socket.flush().await
    }

    #[tokio::test]
    async fn a_download_named_other_than_a_plain_file_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens there: the name is refused before any request.
        let client = Client::new("http://127.0.0.1:9");
        for name in ["../x", "a/b", "/etc/passwd", ".hidden", "..", ""] {
            let e = client.download("/x", dir.path(), name).await.unwrap_err();
            assert!(matches!(e, ClientError::Answer { .. }), "{name:?}: {e}");
        }
    }

    /// Answers one request with a body shorter than its Content-Length,
    /// then closes the connection.
    async fn serve_cut_body(listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (socket, _) = listener.accept().await?;
        let mut socket = BufReader::new(socket);
        let mut line = String::new();
        while socket.read_line(&mut line).await? > 2 {
            line.clear();
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"cut\": ")
            .await?;
        socket.flush().await
    }

    #[tokio::test]
    async fn a_download_cut_short_leaves_no_file() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_cut_body(listener));
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(&format!("http://{address}"));
        let e = client
            .download("/train.jsonl", dir.path(), "train.jsonl")
            .await
            .unwrap_err();
        server.await.unwrap().unwrap();
        assert!(matches!(e, ClientError::Connection { .. }), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn query_values_are_percent_encoded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(echo_request_target(listener));
        let client = Client::new(&format!("http://{address}"));
        let answer = client
            .get(
                "/api/v1/jobs",
                &[("limit", "5"), ("user_id", "a b&c=d/é?#")],
            )
            .await
            .unwrap();
        server.await.unwrap().unwrap();
        assert_eq!(
            answer["target"],
            "/api/v1/jobs?limit=5&user_id=a+b%26c%3Dd%2F%C3%A9%3F%23"
        );
    }
}
