//! A thin HTTP client of the jobd API, with a Server-Sent Events reader.

use futures::StreamExt;
use reqwest::{Method, Response};
use serde_json::Value;

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
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8000`).
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn connection(&self, source: reqwest::Error) -> ClientError {
        ClientError::Connection {
            url: self.base.clone(),
            source,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.connection(e))?;
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
        self.send(method, path, body)
            .await?
            .json()
            .await
            .map_err(|e| self.connection(e))
    }

    /// Follows an SSE stream, calling `on_event(name, data)` for each event
    /// until the stream ends or `on_event` returns false.
    pub async fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &Value) -> bool,
    ) -> Result<(), ClientError> {
        let response = self.send(Method::GET, path, None).await?;
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.connection(e))?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some((event, rest)) = split_event(&buffer) {
                let (name, data) = parse_event(&event);
                buffer = rest;
                if let Some(data) = data
                    && !on_event(&name, &data)
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Splits the first complete event (ended by a blank line) off `buffer`.
fn split_event(buffer: &str) -> Option<(String, String)> {
    let normalized = buffer.replace("\r\n", "\n");
    let end = normalized.find("\n\n")?;
    Some((
        normalized[..end].to_owned(),
        normalized[end + 2..].to_owned(),
    ))
}

/// The event name (default `message`) and JSON data of one SSE event;
/// comments (keep-alives) have no data.
fn parse_event(event: &str) -> (String, Option<Value>) {
    let mut name = "message".to_owned();
    let mut data = String::new();
    for line in event.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    (name, serde_json::from_str(&data).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_parsed() {
        let buffer =
            ": keep-alive\n\nevent: job_update\ndata: {\"status\":\"running\"}\n\nevent: job_com";
        let (first, rest) = split_event(buffer).unwrap();
        assert_eq!(parse_event(&first).1, None);
        let (second, rest) = split_event(&rest).unwrap();
        let (name, data) = parse_event(&second);
        assert_eq!(name, "job_update");
        assert_eq!(data.unwrap()["status"], "running");
        assert_eq!(rest, "event: job_com");
        assert!(split_event(&rest).is_none());
    }
}
