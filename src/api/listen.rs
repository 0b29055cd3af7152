//! The HTTP server loop. HTTP/1.1 connections, at most `max_connections`
//! at once, so the process never runs out of file descriptors: at the cap,
//! a new connection makes the one that has waited longest without a
//! request in progress give way ([`give_way`]), or, when every connection
//! is busy, waits in the listen backlog. Each connection has `read_timeout`
//! to send a request's headers, idle keep-alive time included. So idle and
//! half-sent connections cannot hold the server. On shutdown, accepting
//! stops and open requests finish.
//!
//! hyper answers a head it cannot take itself, with an empty body: 400 for
//! bytes that are not an HTTP/1 request, 414 for a URI over 65,534 bytes,
//! 431 past its header-field count or head size. Those two are set here
//! ([`HYPER_MAX_HEADERS`], [`HYPER_MAX_HEAD_BYTES`]) well above
//! [`super::head::MAX_HEADER_FIELDS`] and [`super::head::MAX_HEAD_BYTES`]
//! (and hyper's URI limit is far above [`super::head::MAX_URI_BYTES`]), so
//! that a head merely over our limits is answered by `head::check_head` in
//! the API's error shape. (Without a set head size, hyper's limit is its
//! read buffer, about 408 KiB, which a fast client can overrun in one read:
//! a 500 KB head was sometimes refused, sometimes served.)

mod give_way;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::add_extension::AddExtension;

use self::give_way::OpenConnections;

/// Header fields hyper parses before it gives up with its own bare 431;
/// ten times [`super::head::MAX_HEADER_FIELDS`].
const HYPER_MAX_HEADERS: usize = 10 * super::head::MAX_HEADER_FIELDS;

/// The largest head hyper reads before its own bare 431; four times
/// [`super::head::MAX_HEAD_BYTES`]. Also what one connection may make the
/// server buffer for a head.
const HYPER_MAX_HEAD_BYTES: usize = 4 * super::head::MAX_HEAD_BYTES;

/// How many connections, and how long a request's headers may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections open at once, at most.
    pub(crate) max_connections: usize,
    /// Time to send a request's headers, counted from the end of the
    /// previous response on a kept-alive connection.
    pub(crate) read_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` fires, then waits for the
/// open connections' requests to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = OpenConnections::new();
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .max_header_size(HYPER_MAX_HEAD_BYTES);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    pause_after(&error, &shutdown).await;
                    continue;
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                open.evict_longest_waiting();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        // No Nagle delay: SSE events and long-poll answers are small
        // writes that must leave at once.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let registered = open.register();
        let connection = http.serve_connection(
            TokioIo::new(stream),
            // Each request carries the TCP peer, as axum's `ConnectInfo`
            // (the audit log's remote address).
            registered.track(TowerToHyperService::new(AddExtension::new(
                app.clone(),
                ConnectInfo(peer),
            ))),
        );
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                // Evicted: closed at once unless a request began since it
                // was chosen, which may finish first.
                _ = registered.evicted() => if registered.is_busy() {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                } else {
                    Ok(())
                },
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// After a failed accept: a connection that died in the backlog is no
/// reason to wait; anything else (out of descriptors, say) is logged and
/// retried after a second, so the loop does not spin.
async fn pause_after(error: &std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}
