//! Serving the router on a TCP listener with limits: a client gets
//! `HASHAR_HTTP_HEADER_TIMEOUT_SECS` to send a request's headers and
//! `HASHAR_HTTP_REQUEST_TIMEOUT_SECS` to be answered (408 after that), and at most
//! `HASHAR_HTTP_MAX_CONNECTIONS` connections are open at once.
//!
//! Written on hyper's own connection builder rather than `axum::serve`, which sets no timer
//! and therefore has no header-read timeout: a client that sent half a request kept its
//! connection (and a task) forever.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, http::StatusCode, Extension, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower_http::timeout::TimeoutLayer;
use tower_layer::Layer;

use crate::config::Config;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to receive a request's headers, from the first byte of a request (or the start
    /// of an idle connection).
    pub header_read_timeout: Duration,
    /// Time for the request's body to arrive and the handler to answer.
    pub request_timeout: Duration,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl HttpLimits {
    pub fn from_config(config: &Config) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(config.http_header_timeout_secs),
            request_timeout: Duration::from_secs(config.http_request_timeout_secs),
            max_connections: config.http_max_connections.max(1),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections in
/// flight finish their requests (each is told to close after its current one).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first: at the limit, new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        // The client's address, for the console's per-address sign-in limit.
        let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(router.clone()));
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s) => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(header: u64, request: u64, connections: usize) -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(header),
            request_timeout: Duration::from_millis(request),
            max_connections: connections,
        }
    }

    /// A served router on 127.0.0.1 with `limits`; the sender stops it.
    async fn start(limits: HttpLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let router = Router::new()
            .route("/", get(|| async { "hello" }))
            .route("/echo", post(|body: String| async move { body }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// Everything the server sends until it closes the connection, bounded by `within`.
    async fn read_to_close(stream: &mut tokio::net::TcpStream, within: Duration) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "the server did not close the connection in time"
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_client_that_sends_half_the_headers_is_cut_off() {
        let (addr, _stop) = start(limits(200, 10_000, 16)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await
            .expect("write");
        // Cut off by the header timeout (200 ms), long before the request timeout (10 s).
        let answer = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(!answer.contains("200 OK"), "{answer}");
        // The server still serves others.
        let mut ok = tokio::net::TcpStream::connect(addr).await.expect("connect");
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_to_close(&mut ok, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_that_sends_half_the_body_gets_408() {
        let (addr, _stop) = start(limits(10_000, 300, 16)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
            .await
            .expect("write");
        let answer = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let (addr, _stop) = start(limits(10_000, 10_000, 1)).await;
        // The only slot, taken by a client that has sent nothing yet.
        let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
        assert!(
            waited.is_err(),
            "the second connection was served beyond the limit"
        );
        // The first finishes; the second is served.
        first
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_to_close(&mut first, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let answer = read_to_close(&mut second, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
