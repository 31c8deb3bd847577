//! What the daemon tells an operator: Prometheus metrics of the calls it serves and how long
//! they wait, and the probes a DaemonSet's kubelet asks, on one TCP address (`--metrics`).
//!
//! - `GET /metrics`: the OpenMetrics text of [`Metrics`];
//! - `GET /healthz`: 200 while the process answers;
//! - `GET /readyz`: 200 while the daemon takes calls on its socket, 503 before it is bound and
//!   once it is stopping (a shim then runs its call in-process).
//!
//! The endpoint speaks just enough HTTP/1.1 for a scraper and a probe: one request per
//! connection, headers bounded, answered and closed. It reads nothing else a client sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send its request line and headers.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// The most a request may send before its blank line (a GET has no body).
const MAX_REQUEST: usize = 8 * 1024;

/// A served call's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// CNI_COMMAND as the runtime sent it.
    verb: String,
    /// The CNI result code: 0 for success, else the error's code.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

type Seconds = Family<VerbLabels, Histogram, fn() -> Histogram>;

/// 1 ms to about 65 s, doubling: a CNI call is milliseconds when all is well and the kubelet
/// gives it minutes when it is not.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The daemon's metrics, shared by its connections and its endpoint.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    call_seconds: Seconds,
    wait_seconds: Histogram,
    declined: Counter,
    /// Calls in a slot now.
    pub running: Gauge,
    /// Calls waiting for a slot now.
    pub waiting: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero; not ready.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasmcni");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "cni_calls",
            "CNI calls the daemon served, by verb and CNI result code (0: success)",
            calls.clone(),
        );
        let call_seconds = Seconds::new_with_constructor(seconds);
        registry.register(
            "cni_call_seconds",
            "Time a served call took in its slot, by verb (its wait for the slot apart)",
            call_seconds.clone(),
        );
        let wait_seconds = seconds();
        registry.register(
            "daemon_wait_seconds",
            "Time a call waited for a slot",
            wait_seconds.clone(),
        );
        let declined = Counter::default();
        registry.register(
            "daemon_declined_calls",
            "Calls the daemon declined (busy, wrong peer, no call in time, stopping); \
             each ran in its shim's process instead",
            declined.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "daemon_calls_running",
            "Calls in a slot now",
            running.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "daemon_calls_waiting",
            "Calls waiting for a slot now",
            waiting.clone(),
        );
        Metrics {
            registry,
            calls,
            call_seconds,
            wait_seconds,
            declined,
            running,
            waiting,
            ready: AtomicBool::new(false),
        }
    }

    /// A call served: its verb, whether it succeeded and what it printed (a CNI error's code
    /// is read from it), how long it ran and how long it waited for its slot.
    pub fn served(&self, verb: &str, ok: bool, out: &str, ran: Duration, waited: Duration) {
        let code = if ok { 0 } else { error_code(out) };
        self.calls
            .get_or_create(&CallLabels {
                verb: verb.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.call_seconds
            .get_or_create(&VerbLabels {
                verb: verb.to_string(),
            })
            .observe(ran.as_secs_f64());
        self.wait_seconds.observe(waited.as_secs_f64());
    }

    /// A call declined.
    pub fn declined(&self) {
        self.declined.inc();
    }

    /// Whether the daemon takes calls (what `/readyz` answers).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry)
            .expect("encoding into a String cannot fail");
        s
    }
}

/// The code of the CNI error `out` prints; 999 (wasmcni's internal error) when it is not one.
fn error_code(out: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(out)
        .ok()
        .and_then(|v| v.get("code")?.as_u64())
        .unwrap_or(999)
}

/// Listen on `addr` (bound before this returns, so a taken port fails the daemon's start).
pub async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `listener` for as long as the task lives.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, metrics.clone()));
            }
            Err(e) => {
                tracing::warn!("accept on the metrics endpoint: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: Arc<Metrics>) {
    let Ok(Some(head)) = tokio::time::timeout(REQUEST_WAIT, read_head(&mut stream)).await else {
        return;
    };
    let (status, kind, body) = respond(&head, &metrics);
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    if !head.starts_with("HEAD ") {
        let _ = stream.write_all(body.as_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

/// The request line and headers, up to the blank line; `None` when the client sends more
/// than [`MAX_REQUEST`] or closes first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

/// Status line, content type and body for the request whose head is `head`.
fn respond(head: &str, metrics: &Metrics) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut line = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (
        line.next().unwrap_or_default(),
        line.next().unwrap_or_default(),
    );
    if method != "GET" && method != "HEAD" {
        return ("405 Method Not Allowed", TEXT, "GET or HEAD only\n".into());
    }
    // A scraper may add a query (`?name[]=…`); the whole set is served regardless.
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if metrics.ready.load(Ordering::SeqCst) => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            TEXT,
            "not taking calls (starting or stopping)\n".into(),
        ),
        _ => (
            "404 Not Found",
            TEXT,
            "/metrics, /healthz or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a served call and a decline leave in the text a scraper reads, and the probes.
    #[test]
    fn counters_and_probes() {
        let m = Metrics::new();
        let ms = Duration::from_millis;
        m.served("ADD", true, "{}", ms(12), ms(0));
        m.served("ADD", false, r#"{"code": 11, "msg": "x"}"#, ms(3), ms(1500));
        m.served("DEL", false, "not json", ms(1), ms(0));
        m.declined();
        let text = m.encode();
        for want in [
            r#"wasmcni_cni_calls_total{verb="ADD",code="0"} 1"#,
            r#"wasmcni_cni_calls_total{verb="ADD",code="11"} 1"#,
            r#"wasmcni_cni_calls_total{verb="DEL",code="999"} 1"#,
            r#"wasmcni_cni_call_seconds_count{verb="ADD"} 2"#,
            "wasmcni_daemon_wait_seconds_count 3",
            "wasmcni_daemon_declined_calls_total 1",
            "wasmcni_daemon_calls_waiting 0",
        ] {
            assert!(text.contains(want), "{want} not in:\n{text}");
        }
        let status = |head: &str| respond(head, &m).0;
        assert_eq!(
            status("GET /readyz HTTP/1.1\r\n\r\n"),
            "503 Service Unavailable"
        );
        m.set_ready(true);
        assert_eq!(status("GET /readyz HTTP/1.1\r\n\r\n"), "200 OK");
        assert_eq!(status("GET /healthz HTTP/1.1\r\n\r\n"), "200 OK");
        assert_eq!(status("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), "200 OK");
        assert_eq!(
            status("POST /metrics HTTP/1.1\r\n\r\n"),
            "405 Method Not Allowed"
        );
        assert_eq!(status("GET /other HTTP/1.1\r\n\r\n"), "404 Not Found");
    }
}
