//! Which connection gives way when the server is at its connection cap and
//! another client connects: the one that has waited longest without a
//! request in progress, an idle keep-alive connection or one that has not
//! finished sending its headers. A client that sends its request as it
//! connects is served however many idle or half-sent connections are held
//! open: those only evict each other. (nginx closes idle keep-alive
//! connections the same way when it runs out of connections.) A connection
//! with a request in progress, an SSE stream or a long-poll, never gives way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, Response};
use futures::future::BoxFuture;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The open connections.
#[derive(Debug)]
pub(super) struct OpenConnections {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
}

/// One open connection's state.
#[derive(Debug)]
struct Connection {
    /// Requests whose response is not yet sent.
    in_flight: AtomicUsize,
    /// Milliseconds after the epoch since which no request was in flight.
    waiting_since: AtomicU64,
    evict: CancellationToken,
}

impl OpenConnections {
    pub(super) fn new() -> Arc<OpenConnections> {
        Arc::new(OpenConnections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        // The map stays consistent whatever panicked while holding it.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection, waiting for its first request.
    pub(super) fn register(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            in_flight: AtomicUsize::new(0),
            waiting_since: AtomicU64::new(self.now()),
            evict: CancellationToken::new(),
        });
        self.open().insert(id, connection.clone());
        Registered {
            connections: self.clone(),
            id,
            connection,
        }
    }

    /// Closes the connection that has waited longest without a request in
    /// progress; false if every connection has one.
    pub(super) fn evict_longest_waiting(&self) -> bool {
        let open = self.open();
        let longest = open
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.evict.is_cancelled())
            .min_by_key(|c| c.waiting_since.load(Ordering::Relaxed));
        match longest {
            Some(connection) => {
                connection.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// A registered connection; unregistered when dropped.
pub(super) struct Registered {
    connections: Arc<OpenConnections>,
    id: u64,
    connection: Arc<Connection>,
}

impl Registered {
    /// Fires when this connection must give way.
    pub(super) fn evicted(&self) -> WaitForCancellationFutureOwned {
        self.connection.evict.clone().cancelled_owned()
    }

    /// Whether a request is in progress.
    pub(super) fn is_busy(&self) -> bool {
        self.connection.in_flight.load(Ordering::Acquire) > 0
    }

    /// `service`, with this connection's requests counted in flight from
    /// the moment their headers are read until their response is sent.
    pub(super) fn track<S>(&self, service: S) -> Tracked<S> {
        Tracked {
            service,
            connections: self.connections.clone(),
            connection: self.connection.clone(),
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.open().remove(&self.id);
    }
}

/// A connection's service, counting its requests in flight.
pub(super) struct Tracked<S> {
    service: S,
    connections: Arc<OpenConnections>,
    connection: Arc<Connection>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<InFlightBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.connection.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight {
            connections: self.connections.clone(),
            connection: self.connection.clone(),
        };
        let response = self.service.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| InFlightBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// One request in flight; it ends when dropped with its response's body
/// (sent, or abandoned with the connection).
struct InFlight {
    connections: Arc<OpenConnections>,
    connection: Arc<Connection>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.connections.now();
        self.connection.waiting_since.store(now, Ordering::Relaxed);
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub(super) struct InFlightBody {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
