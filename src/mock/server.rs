//! The accept loop and per-connection HTTP/1 serving.
//!
//! Connections are served with hyper's connection builder rather than `axum::serve`, so that
//! a handler can make its connection close abruptly (an injected reset) and so that the
//! header read timeout is configurable.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::app::{self, Shared};
use super::observe::serve_request;

/// Time that open connections get to finish their responses after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept, such as one for too many open files, before the next try.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Lets a handler ask for its connection to be reset. Each request carries its connection's
/// control.
///
/// Handlers run inside the connection task's poll of the hyper connection, so the task checks
/// the flag after each poll and needs no wakeup.
#[derive(Debug, Default)]
pub(crate) struct ConnectionControl {
    reset: AtomicBool,
}

impl ConnectionControl {
    /// Asks the connection task to drop the connection with a TCP reset and no response.
    pub(crate) fn request_reset(&self) {
        self.reset.store(true, Ordering::Release);
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }
}

/// A TCP stream that closes with a reset (RST) instead of FIN when its connection was asked
/// to reset.
struct ResettableStream {
    stream: TcpStream,
    control: Arc<ConnectionControl>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.control.is_reset() {
            // With a zero linger, close() sends RST and discards unsent data instead of blocking.
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "failed to set SO_LINGER 0 for an injected reset");
            }
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts connections until `shutdown` changes or its sender is dropped, then gives open
/// connections `SHUTDOWN_GRACE` to finish before aborting them.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = TowerToHyperService::new(app::router(shared.clone()));
    let header_read_timeout = shared.config.header_read_timeout.0;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection = Connection {
                        shared: shared.clone(),
                        router: router.clone(),
                        builder: builder.clone(),
                        shutdown: shutdown.clone(),
                    };
                    connections.spawn(connection.serve(stream));
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = joined {
                    tracing::error!(%error, "a connection task failed");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; aborting them"
        );
        connections.shutdown().await;
    }
}

/// Shared handles that each connection task gets besides its stream.
struct Connection {
    shared: Arc<Shared>,
    router: TowerToHyperService<Router>,
    builder: Arc<http1::Builder>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Serves one connection until the client closes it, a handler requests a reset, or a
    /// shutdown finishes it gracefully.
    async fn serve(mut self, stream: TcpStream) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "failed to set TCP_NODELAY");
        }
        let control = Arc::new(ConnectionControl::default());
        let io = TokioIo::new(ResettableStream {
            stream,
            control: control.clone(),
        });
        let (shared, router, request_control) =
            (self.shared.clone(), self.router.clone(), control.clone());
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            serve_request(
                shared.clone(),
                router.clone(),
                request_control.clone(),
                request,
            )
        });
        let connection = pin!(self.builder.serve_connection(io, service));
        drive(connection, &control, &mut self.shutdown).await;
    }
}

/// Event that ends one wait in [`drive`].
enum ConnectionEvent {
    Closed(Result<(), hyper::Error>),
    Reset,
    Shutdown,
}

/// Polls `connection` until it closes or a handler requests a reset, and starts a graceful
/// close when `shutdown` changes.
async fn drive<S>(
    mut connection: Pin<&mut http1::Connection<TokioIo<ResettableStream>, S>>,
    control: &ConnectionControl,
    shutdown: &mut watch::Receiver<bool>,
) where
    S: hyper::service::HttpService<Incoming, ResBody = axum::body::Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut shutdown_changed = pin!(shutdown.changed());
    let mut shutting_down = false;
    loop {
        let event = poll_fn(|context| {
            if let Poll::Ready(result) = connection.as_mut().poll(context) {
                return Poll::Ready(ConnectionEvent::Closed(result));
            }
            if control.is_reset() {
                return Poll::Ready(ConnectionEvent::Reset);
            }
            if !shutting_down && shutdown_changed.as_mut().poll(context).is_ready() {
                return Poll::Ready(ConnectionEvent::Shutdown);
            }
            Poll::Pending
        })
        .await;
        match event {
            ConnectionEvent::Closed(Err(error)) => {
                // Malformed requests, header timeouts and client hang-ups end up here.
                tracing::debug!(%error, "connection ended with an error");
                break;
            }
            ConnectionEvent::Closed(Ok(())) | ConnectionEvent::Reset => break,
            ConnectionEvent::Shutdown => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
