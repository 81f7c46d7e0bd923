//! sb_pravega: the Python binding of stream-backend over the pravega-client 0.3.7 crates.
//!
//! Controller calls go through `ClientFactory::controller_client()` and writes through
//! the crate's `EventWriter` (public API). Segment reads and segment info are sent as raw
//! wire commands (`ReadSegment`, `GetStreamSegmentInfo`) over a connection pool built from
//! the public `pravega-wire-protocol` / `pravega-connection-pool` crates, because the
//! pravega-client crate keeps its segment reader `pub(crate)` in 0.3.7.
//!
//! Every blocking call releases the GIL and is bounded by a timeout; nothing is printed.

mod append;

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use pravega_client::client_factory::ClientFactory;
use pravega_client::event::writer::EventWriter;
use pravega_client_config::ClientConfigBuilder;
use pravega_client_retry::retry_result::RetryError;
use pravega_client_shared::{
    CToken, PravegaNodeUri, Retention, RetentionType, ScaleType, Scaling, Scope, ScopedSegment, ScopedStream,
    Segment, Stream, StreamConfiguration, StreamCut, StreamSegments,
};
use pravega_controller_client::ControllerError;
use pravega_connection_pool::connection_pool::ConnectionPool;
use pravega_wire_protocol::client_connection::{ClientConnection, ClientConnectionImpl};
use pravega_wire_protocol::commands::{GetStreamSegmentInfoCommand, ReadSegmentCommand, Reply, Request};
use pravega_wire_protocol::connection_factory::{
    ConnectionFactory, ConnectionFactoryConfig, SegmentConnectionManager,
};
use pravega_wire_protocol::wire_commands::{Replies, Requests};

/// Largest `suggested_length` we ask the segment store for in one ReadSegment.
const READ_CHUNK: i32 = 1024 * 1024;

static REQUEST_ID: AtomicI64 = AtomicI64::new(1);
fn next_request_id() -> i64 {
    REQUEST_ID.fetch_add(1, Ordering::SeqCst)
}

fn scoped_stream(scope: &str, stream: &str) -> ScopedStream {
    ScopedStream {
        scope: Scope { name: scope.to_string() },
        stream: Stream { name: stream.to_string() },
    }
}

fn scoped_segment(scope: &str, stream: &str, segment_id: i64) -> ScopedSegment {
    ScopedSegment {
        scope: Scope { name: scope.to_string() },
        stream: Stream { name: stream.to_string() },
        segment: Segment::from(segment_id),
    }
}

create_exception!(sb_pravega, PravegaError, PyException, "A Pravega call failed (the message says which and why).");
create_exception!(sb_pravega, NotFound, PravegaError, "No such scope, stream or segment.");
create_exception!(sb_pravega, Truncated, PravegaError, "A read below the segment's start offset (truncated away).");

/// Errors produced inside the async part, mapped to Python exceptions afterwards.
enum Error {
    NotFound(String),
    Truncated(String),
    Other(String),
}

impl Error {
    fn into_py(self) -> PyErr {
        match self {
            Error::NotFound(m) => NotFound::new_err(m),
            Error::Truncated(m) => Truncated::new_err(m),
            Error::Other(m) => PravegaError::new_err(m),
        }
    }
}

type Res<T> = Result<T, Error>;

/// How often a blocked call looks for a signal (Ctrl-C) to deliver to Python.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Drive `fut` to completion with the GIL released, at most `timeout` seconds, and give
/// up at once when Python has a signal to handle (KeyboardInterrupt on Ctrl-C): the
/// future is dropped, which cancels its requests.
fn wait<T, F, B>(py: Python<'_>, timeout: f64, what: &str, block_on: B, fut: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = Res<T>> + Send,
    B: FnOnce(std::pin::Pin<Box<dyn Future<Output = Result<Res<T>, PyErr>> + Send + '_>>) -> Result<Res<T>, PyErr>
        + Send,
{
    if !(timeout > 0.0 && timeout.is_finite()) {
        return Err(PyValueError::new_err("timeout must be a positive number of seconds"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
    let what = what.to_string();
    let out = py.allow_threads(move || {
        block_on(Box::pin(async move {
            tokio::pin!(fut);
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(PyTimeoutError::new_err(format!("{} timed out after {}s", what, timeout)));
                }
                let step = SIGNAL_POLL.min(deadline - now);
                if let Ok(r) = tokio::time::timeout(step, &mut fut).await {
                    return Ok(r);
                }
                Python::with_gil(|py| py.check_signals())?;
            }
        }))
    });
    out?.map_err(Error::into_py)
}

#[pyclass(module = "sb_pravega", frozen)]
struct Client {
    // Owns the tokio runtime (multi-thread, worker threads = #cores) and the controller client.
    factory: ClientFactory,
    // Our own segment-store connection pool (the factory's pool is private).
    pool: ConnectionPool<SegmentConnectionManager>,
    // Segment store of each segment, as the controller last said (dropped on WrongHost).
    endpoints: Mutex<HashMap<String, PravegaNodeUri>>,
    // Delegation token of each stream and when it was fetched (reused for TOKEN_REUSE).
    tokens: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

/// How long a delegation token is reused before the controller is asked again (its own
/// tokens live far longer; empty when auth is off).
const TOKEN_REUSE: Duration = Duration::from_secs(60);

impl Client {
    /// Run `fut` on the factory's runtime with the GIL released, bounded by `timeout` seconds.
    fn run<T, F>(&self, py: Python<'_>, timeout: f64, what: &str, fut: F) -> PyResult<T>
    where
        T: Send,
        F: Future<Output = Res<T>> + Send,
    {
        let rt = self.factory.runtime();
        wait(py, timeout, what, |f| rt.block_on(f), fut)
    }

    /// A connection to the segment store at `endpoint`, from our pool.
    async fn connect(&self, endpoint: &PravegaNodeUri) -> Res<ClientConnectionImpl<'_>> {
        let conn = self
            .pool
            .get_connection(endpoint.clone())
            .await
            .map_err(|e| Error::Other(format!("connect to segment store {}: {}", endpoint.0, e)))?;
        Ok(ClientConnectionImpl::new(conn))
    }

    /// One request/reply exchange with the segment store hosting `endpoint`.
    async fn send(&self, endpoint: &PravegaNodeUri, request: Requests) -> Res<Replies> {
        let mut conn = self.connect(endpoint).await?;
        conn.write(&request)
            .await
            .map_err(|e| Error::Other(format!("write to {}: {}", endpoint.0, e)))?;
        // read_wirecommand marks the connection non-recyclable until a full reply is read,
        // so a cancelled (timed out) read does not put a half-read connection back in the pool.
        let reply = conn
            .read()
            .await
            .map_err(|e| Error::Other(format!("read from {}: {}", endpoint.0, e)))?;
        if reply.get_request_id() != request.get_request_id() {
            conn.set_failure();
            return Err(Error::Other(format!(
                "reply id {} does not match request id {}",
                reply.get_request_id(),
                request.get_request_id()
            )));
        }
        Ok(reply)
    }

    async fn endpoint(&self, seg: &ScopedSegment) -> Res<PravegaNodeUri> {
        let key = seg.to_string();
        if let Some(uri) = self.endpoints.lock().unwrap().get(&key) {
            return Ok(uri.clone());
        }
        let uri = self
            .factory
            .controller_client()
            .get_endpoint_for_segment(seg)
            .await
            .map_err(|e| Error::Other(format!("get_endpoint_for_segment({}): {:?}", seg, e.error)))?;
        self.endpoints.lock().unwrap().insert(key, uri.clone());
        Ok(uri)
    }

    /// The segment store to ask after a WrongHost reply: the controller's current answer.
    async fn fresh_endpoint(&self, seg: &ScopedSegment) -> Res<PravegaNodeUri> {
        self.endpoints.lock().unwrap().remove(&seg.to_string());
        self.endpoint(seg).await
    }

    async fn token(&self, seg: &ScopedSegment) -> Res<String> {
        // Empty string when auth is disabled on the controller.
        let stream = ScopedStream::from(seg);
        let key = stream.to_string();
        if let Some((tok, at)) = self.tokens.lock().unwrap().get(&key) {
            if at.elapsed() < TOKEN_REUSE {
                return Ok(tok.clone());
            }
        }
        let tok = self
            .factory
            .controller_client()
            .get_or_refresh_delegation_token_for(stream)
            .await
            .map_err(|e| Error::Other(format!("delegation token for {}: {:?}", seg, e.error)))?;
        self.tokens.lock().unwrap().insert(key, (tok.clone(), std::time::Instant::now()));
        Ok(tok)
    }

    async fn segment_info_async(&self, seg: &ScopedSegment) -> Res<(i64, i64, bool)> {
        let token = self.token(seg).await?;
        let mut endpoint = self.endpoint(seg).await?;
        for _attempt in 0..3 {
            let req = Requests::GetStreamSegmentInfo(GetStreamSegmentInfoCommand {
                request_id: next_request_id(),
                segment_name: seg.to_string(),
                delegation_token: token.clone(),
            });
            match self.send(&endpoint, req).await? {
                Replies::StreamSegmentInfo(cmd) => {
                    if !cmd.exists || cmd.is_deleted {
                        return Err(Error::NotFound(format!("segment {} does not exist", seg)));
                    }
                    return Ok((cmd.start_offset, cmd.write_offset, cmd.is_sealed));
                }
                Replies::NoSuchSegment(_) => {
                    return Err(Error::NotFound(format!("segment {} does not exist", seg)))
                }
                Replies::WrongHost(_) => endpoint = self.fresh_endpoint(seg).await?,
                other => return Err(Error::Other(format!("unexpected reply to GetStreamSegmentInfo: {:?}", other))),
            }
        }
        Err(Error::Other(format!("segment {}: wrong host after retries", seg)))
    }

    async fn read_segment_async(&self, seg: &ScopedSegment, offset: i64, length: i64, end: Option<i64>) -> Res<Vec<u8>> {
        // The segment store long-polls a ReadSegment at the tail of an open segment (it
        // waits for new data), so clamp the read to the write offset known right now.
        let write_offset = match end {
            Some(e) => e,
            None => self.segment_info_async(seg).await?.1,
        };
        let length = length.min((write_offset - offset).max(0));
        if length == 0 {
            return Ok(Vec::new());
        }
        let token = self.token(seg).await?;
        let mut endpoint = self.endpoint(seg).await?;
        let mut out: Vec<u8> = Vec::with_capacity(length.min(64 * 1024 * 1024) as usize);
        let mut pos = offset;
        let mut wrong_host = 0;
        while (out.len() as i64) < length {
            let want = (length - out.len() as i64).min(READ_CHUNK as i64) as i32;
            let req = Requests::ReadSegment(ReadSegmentCommand {
                segment: seg.to_string(),
                offset: pos,
                suggested_length: want,
                delegation_token: token.clone(),
                request_id: next_request_id(),
            });
            match self.send(&endpoint, req).await? {
                Replies::SegmentRead(cmd) => {
                    if cmd.offset != pos {
                        return Err(Error::Other(format!(
                            "SegmentRead offset {} != requested {}",
                            cmd.offset, pos
                        )));
                    }
                    let n = cmd.data.len() as i64;
                    let room = length - out.len() as i64;
                    let take = n.min(room) as usize;
                    out.extend_from_slice(&cmd.data[..take]);
                    pos += take as i64;
                    // at_tail: no more data currently available; end_of_segment: sealed and fully read.
                    if cmd.end_of_segment || cmd.at_tail || n == 0 {
                        break;
                    }
                }
                // Reading at/after the end of a sealed segment.
                Replies::SegmentIsSealed(_) => break,
                Replies::SegmentIsTruncated(cmd) => {
                    return Err(Error::Truncated(format!(
                        "segment {} truncated: offset {} < start offset {}",
                        seg, pos, cmd.start_offset
                    )))
                }
                Replies::NoSuchSegment(_) => {
                    return Err(Error::NotFound(format!("segment {} does not exist", seg)))
                }
                Replies::WrongHost(_) if wrong_host < 3 => {
                    wrong_host += 1;
                    endpoint = self.fresh_endpoint(seg).await?;
                }
                other => return Err(Error::Other(format!("unexpected reply to ReadSegment: {:?}", other))),
            }
        }
        Ok(out)
    }
}

/// Scan reads start this small, so a large event is jumped over after reading its header
/// only; they double (to `SCAN_MAX`) while every event read fits.
const SCAN_MIN: i64 = 64 * 1024;
const SCAN_MAX: i64 = 4 * 1024 * 1024;
const HEADER: i64 = 8;

impl Client {
    /// Walk the event headers of `[offset, end)`: -> (offset after the last whole event,
    /// seqs, payload lengths). A large event's payload is not read, only its header.
    async fn scan_segment_async(
        &self,
        seg: &ScopedSegment,
        offset: i64,
        end: i64,
        max_size: i64,
        limit: usize,
    ) -> Res<(i64, Vec<i64>, Vec<i64>)> {
        let (mut seqs, mut lens) = (Vec::new(), Vec::new());
        let mut pos = offset;
        let mut chunk = SCAN_MIN;
        while pos < end && seqs.len() < limit {
            let raw = self.read_segment_async(seg, pos, chunk.min(end - pos), Some(end)).await?;
            if raw.is_empty() {
                break;
            }
            let mut at = 0usize;
            let mut jumped = false;
            while at + HEADER as usize <= raw.len() && seqs.len() < limit {
                let typ = i32::from_be_bytes(raw[at..at + 4].try_into().unwrap());
                let size = i32::from_be_bytes(raw[at + 4..at + 8].try_into().unwrap()) as i64;
                let seq = pos + at as i64;
                if typ != 0 || size < 0 || size > max_size {
                    return Err(Error::Other(format!(
                        "corrupt: segment {} data at offset {} is not a Pravega event header (type {}, length {})",
                        seg, seq, typ, size
                    )));
                }
                if seq + HEADER + size > end {
                    return Err(Error::Other(format!(
                        "corrupt: event at offset {} of segment {} ({} bytes) runs past the end {}",
                        seq, seg, size, end
                    )));
                }
                if at as i64 + HEADER + size > raw.len() as i64 {
                    if size < SCAN_MIN && at > 0 {
                        break; // a small event cut by the chunk's end: the next read starts at it
                    }
                    seqs.push(seq);
                    lens.push(size);
                    jumped = true; // a large payload not in `raw`: skip it unread
                    at = (at as i64 + HEADER + size) as usize;
                    break;
                }
                seqs.push(seq);
                lens.push(size);
                at += (HEADER + size) as usize;
            }
            if at == 0 {
                break;
            }
            pos += at as i64;
            chunk = if jumped { SCAN_MIN } else { (chunk * 2).min(SCAN_MAX) };
        }
        Ok((pos, seqs, lens))
    }
}

/// A controller call's error, as one line naming the call.
async fn ctl<T, F>(what: &str, fut: F) -> Res<T>
where
    F: Future<Output = Result<T, RetryError<ControllerError>>>,
{
    fut.await.map_err(|e| {
        let text = format!("{}: {}", what, e.error);
        let lower = text.to_lowercase();
        if lower.contains("not found") || lower.contains("notfound") || lower.contains("does not exist") {
            Error::NotFound(text)
        } else {
            Error::Other(text)
        }
    })
}

/// [(segment id, low key, high key)] sorted by low key.
fn ranges_of(segs: &StreamSegments) -> Vec<(i64, f64, f64)> {
    let mut v: Vec<(i64, f64, f64)> = segs
        .key_segment_map
        .values()
        .map(|r| (r.scoped_segment.segment.number, r.min_key.0, r.max_key.0))
        .collect();
    v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
    v
}

fn scaling_of(kind: &str, rate: i32, factor: i32, min_segments: i32) -> PyResult<Scaling> {
    let scale_type = match kind {
        "fixed" => ScaleType::FixedNumSegments,
        "events" => ScaleType::ByRateInEventsPerSec,
        "kbytes" => ScaleType::ByRateInKbytesPerSec,
        _ => return Err(PyValueError::new_err(format!("scaling must be fixed, events or kbytes, got {:?}", kind))),
    };
    if min_segments < 1 {
        return Err(PyValueError::new_err("min_segments must be >= 1"));
    }
    Ok(Scaling { scale_type, target_rate: rate, scale_factor: factor, min_num_segments: min_segments })
}

fn retention_of(kind: &str, param: i64) -> PyResult<Retention> {
    let retention_type = match kind {
        "none" => RetentionType::None,
        "time" => RetentionType::Time,
        "size" => RetentionType::Size,
        _ => return Err(PyValueError::new_err(format!("retention must be none, time or size, got {:?}", kind))),
    };
    Ok(Retention { retention_type, retention_param: param })
}

/// (scaling, rate, factor, min segments, retention, retention parameter, tags)
type ConfigTuple = (String, i32, i32, i32, String, i64, Vec<String>);

#[allow(clippy::too_many_arguments)]
fn config_of(
    scope: &str,
    stream: &str,
    scaling: (String, i32, i32, i32),
    retention: (String, i64),
    tags: Vec<String>,
) -> PyResult<StreamConfiguration> {
    Ok(StreamConfiguration {
        scoped_stream: scoped_stream(scope, stream),
        scaling: scaling_of(&scaling.0, scaling.1, scaling.2, scaling.3)?,
        retention: retention_of(&retention.0, retention.1)?,
        tags: Some(tags),
    })
}

#[pymethods]
impl Client {
    /// `auth`: send the credentials of the client's `pravega_client_auth_*` environment;
    /// `tls_verify=False` skips certificate checks (tls:// only; tests).
    #[new]
    #[pyo3(signature = (controller_uri, auth = false, tls_verify = true))]
    fn new(controller_uri: &str, auth: bool, tls_verify: bool) -> PyResult<Self> {
        if !PravegaNodeUri::is_well_formed(controller_uri.to_string()) {
            return Err(PyValueError::new_err(format!(
                "controller_uri must be [tcp://|tls://]host:port, got {:?}",
                controller_uri
            )));
        }
        let config = ClientConfigBuilder::default()
            .controller_uri(controller_uri)
            .is_auth_enabled(auth)
            .disable_cert_verification(!tls_verify)
            .build()
            .map_err(|e| PyValueError::new_err(format!("client config: {}", e)))?;
        let cf = <dyn ConnectionFactory>::create(ConnectionFactoryConfig::from(&config));
        let pool = ConnectionPool::new(SegmentConnectionManager::new(cf, config.max_connections_in_pool));
        // ClientFactory::new builds its own multi-thread tokio runtime; the controller
        // gRPC channel connects lazily, so this does not touch the network.
        let factory = ClientFactory::new(config);
        Ok(Client { factory, pool, endpoints: Mutex::new(HashMap::new()), tokens: Mutex::new(HashMap::new()) })
    }

    /// Scope names (the system's own, starting with `_`, included).
    #[pyo3(signature = (timeout = 30.0))]
    fn list_scopes(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<String>> {
        self.run(py, timeout, "list_scopes", async {
            let cc = self.factory.controller_client();
            let (mut out, mut token) = (Vec::new(), CToken::empty());
            while let Some((page, next)) = ctl("list_scopes", cc.list_scopes(&token)).await? {
                out.extend(page.into_iter().map(|s| s.name));
                token = next;
            }
            Ok(out)
        })
    }

    /// True if created, False if it existed.
    #[pyo3(signature = (scope, timeout = 30.0))]
    fn create_scope(&self, py: Python<'_>, scope: &str, timeout: f64) -> PyResult<bool> {
        let s = Scope { name: scope.to_string() };
        self.run(py, timeout, "create_scope", ctl("create_scope", self.factory.controller_client().create_scope(&s)))
    }

    /// True if deleted, False if it did not exist; PravegaError "Scope not empty".
    #[pyo3(signature = (scope, timeout = 30.0))]
    fn delete_scope(&self, py: Python<'_>, scope: &str, timeout: f64) -> PyResult<bool> {
        let s = Scope { name: scope.to_string() };
        self.run(py, timeout, "delete_scope", ctl("delete_scope", self.factory.controller_client().delete_scope(&s)))
    }

    /// Stream names of a scope (internal ones, starting with `_`, included).
    #[pyo3(signature = (scope, timeout = 30.0))]
    fn list_streams(&self, py: Python<'_>, scope: &str, timeout: f64) -> PyResult<Vec<String>> {
        let s = Scope { name: scope.to_string() };
        self.run(py, timeout, "list_streams", async {
            let cc = self.factory.controller_client();
            let (mut out, mut token) = (Vec::new(), CToken::empty());
            while let Some((page, next)) = ctl("list_streams", cc.list_streams(&s, &token)).await? {
                out.extend(page.into_iter().map(|s| s.stream.name));
                token = next;
            }
            Ok(out)
        })
    }

    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn stream_exists(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<bool> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "stream_exists", ctl("check_stream_exists", self.factory.controller_client().check_stream_exists(&s)))
    }

    /// `scaling` = (fixed|events|kbytes, target rate, scale factor, min segments),
    /// `retention` = (none|time|size, milliseconds or bytes). True if created, False if it existed.
    #[pyo3(signature = (scope, stream, scaling, retention, tags, timeout = 30.0))]
    #[allow(clippy::too_many_arguments)]
    fn create_stream(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        scaling: (String, i32, i32, i32),
        retention: (String, i64),
        tags: Vec<String>,
        timeout: f64,
    ) -> PyResult<bool> {
        let cfg = config_of(scope, stream, scaling, retention, tags)?;
        self.run(py, timeout, "create_stream", ctl("create_stream", self.factory.controller_client().create_stream(&cfg)))
    }

    /// Replace the stream's configuration (policies and tags), as `create_stream` takes it.
    #[pyo3(signature = (scope, stream, scaling, retention, tags, timeout = 30.0))]
    #[allow(clippy::too_many_arguments)]
    fn update_stream(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        scaling: (String, i32, i32, i32),
        retention: (String, i64),
        tags: Vec<String>,
        timeout: f64,
    ) -> PyResult<bool> {
        let cfg = config_of(scope, stream, scaling, retention, tags)?;
        self.run(py, timeout, "update_stream", ctl("update_stream", self.factory.controller_client().update_stream(&cfg)))
    }

    /// (scaling, rate, factor, min segments, retention, retention parameter, tags).
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn stream_config(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<ConfigTuple> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "stream_config", async {
            let cc = self.factory.controller_client();
            let c = ctl("get_stream_configuration", cc.get_stream_configuration(&s)).await?;
            let tags = ctl("get_stream_tags", cc.get_stream_tags(&s)).await?.unwrap_or_default();
            let kind = match c.scaling.scale_type {
                ScaleType::FixedNumSegments => "fixed",
                ScaleType::ByRateInEventsPerSec => "events",
                ScaleType::ByRateInKbytesPerSec => "kbytes",
            };
            let rkind = match c.retention.retention_type {
                RetentionType::None => "none",
                RetentionType::Time => "time",
                RetentionType::Size => "size",
            };
            Ok((
                kind.to_string(),
                c.scaling.target_rate,
                c.scaling.scale_factor,
                c.scaling.min_num_segments,
                rkind.to_string(),
                c.retention.retention_param,
                tags,
            ))
        })
    }

    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn seal_stream(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<bool> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "seal_stream", ctl("seal_stream", self.factory.controller_client().seal_stream(&s)))
    }

    /// Delete a sealed stream. True if deleted, False if it did not exist.
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn delete_stream(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<bool> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "delete_stream", ctl("delete_stream", self.factory.controller_client().delete_stream(&s)))
    }

    /// [(segment_id, low, high)] of the stream's current (open) segments, sorted by low
    /// key; empty when the stream is sealed.
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn current_segments(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<Vec<(i64, f64, f64)>> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "current_segments", async {
            let segs = ctl("get_current_segments", self.factory.controller_client().get_current_segments(&s)).await?;
            Ok(ranges_of(&segs))
        })
    }

    /// [(segment_id, low, high)] of the segments of epoch `epoch`, sorted by low key.
    #[pyo3(signature = (scope, stream, epoch, timeout = 30.0))]
    fn epoch_segments(&self, py: Python<'_>, scope: &str, stream: &str, epoch: i32, timeout: f64) -> PyResult<Vec<(i64, f64, f64)>> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "epoch_segments", async {
            let segs = ctl("get_epoch_segments", self.factory.controller_client().get_epoch_segments(&s, epoch)).await?;
            Ok(ranges_of(&segs))
        })
    }

    /// {segment_id: start_offset} of the stream's head segments.
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn head_segments(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<HashMap<i64, i64>> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "head_segments", async {
            let m = ctl("get_head_segments", self.factory.controller_client().get_head_segments(&s)).await?;
            Ok(m.into_iter().map(|(seg, off)| (seg.number, off)).collect())
        })
    }

    /// [(successor_id, low, high, [predecessor_ids])] sorted by successor id; empty while
    /// the segment is open.
    #[pyo3(signature = (scope, stream, segment_id, timeout = 30.0))]
    fn successors(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        segment_id: i64,
        timeout: f64,
    ) -> PyResult<Vec<(i64, f64, f64, Vec<i64>)>> {
        let seg = scoped_segment(scope, stream, segment_id);
        self.run(py, timeout, "successors", async {
            let r = ctl("get_successors", self.factory.controller_client().get_successors(&seg)).await?;
            let mut v: Vec<(i64, f64, f64, Vec<i64>)> = r
                .segment_with_predecessors
                .iter()
                .map(|(swr, preds)| {
                    let mut p: Vec<i64> = preds.iter().map(|s| s.number).collect();
                    p.sort();
                    (swr.scoped_segment.segment.number, swr.min_key.0, swr.max_key.0, p)
                })
                .collect();
            v.sort_by_key(|t| t.0);
            Ok(v)
        })
    }

    /// Seal `sealed` (segment ids of the current epoch) and create segments over
    /// `new_ranges` [(low, high)] that cover exactly their key space; returns when done.
    #[pyo3(signature = (scope, stream, sealed, new_ranges, timeout = 60.0))]
    fn scale_stream(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        sealed: Vec<i64>,
        new_ranges: Vec<(f64, f64)>,
        timeout: f64,
    ) -> PyResult<()> {
        let s = scoped_stream(scope, stream);
        let sealed: Vec<Segment> = sealed.into_iter().map(Segment::from).collect();
        self.run(py, timeout, "scale_stream", ctl("scale_stream", self.factory.controller_client().scale_stream(&s, &sealed, &new_ranges)))
    }

    /// Truncate the stream at the stream cut {segment_id: offset}.
    #[pyo3(signature = (scope, stream, cut, timeout = 60.0))]
    fn truncate_stream(&self, py: Python<'_>, scope: &str, stream: &str, cut: HashMap<i64, i64>, timeout: f64) -> PyResult<bool> {
        let c = StreamCut { scoped_stream: scoped_stream(scope, stream), segment_offset_map: cut };
        self.run(py, timeout, "truncate_stream", ctl("truncate_stream", self.factory.controller_client().truncate_stream(&c)))
    }

    /// Raw bytes [offset, offset+length) of one segment (events with their 8-byte headers).
    /// Fewer bytes at the segment's end. `end`: the caller's known write offset (saves
    /// one round trip; reads are never sent past the tail, which would long-poll).
    #[pyo3(signature = (scope, stream, segment_id, offset, length, end = None, timeout = 30.0))]
    #[allow(clippy::too_many_arguments)]
    fn read_segment<'py>(
        &self,
        py: Python<'py>,
        scope: &str,
        stream: &str,
        segment_id: i64,
        offset: i64,
        length: i64,
        end: Option<i64>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if offset < 0 || length < 0 {
            return Err(PyValueError::new_err("offset and length must be >= 0"));
        }
        let seg = scoped_segment(scope, stream, segment_id);
        let data = self.run(py, timeout, "read_segment", self.read_segment_async(&seg, offset, length, end))?;
        Ok(PyBytes::new(py, &data))
    }

    /// (next offset, [seq], [payload length]) of the whole events in [offset, end), at
    /// most `limit` of them, reading headers only past large payloads.
    #[pyo3(signature = (scope, stream, segment_id, offset, end, max_size = 8 * 1024 * 1024, limit = 1 << 20, timeout = 30.0))]
    #[allow(clippy::too_many_arguments)]
    fn scan_segment(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        segment_id: i64,
        offset: i64,
        end: i64,
        max_size: i64,
        limit: usize,
        timeout: f64,
    ) -> PyResult<(i64, Vec<i64>, Vec<i64>)> {
        let seg = scoped_segment(scope, stream, segment_id);
        self.run(py, timeout, "scan_segment", self.scan_segment_async(&seg, offset, end, max_size, limit))
    }

    /// (start_offset, write_offset, sealed) from the segment store.
    #[pyo3(signature = (scope, stream, segment_id, timeout = 30.0))]
    fn segment_info(
        &self,
        py: Python<'_>,
        scope: &str,
        stream: &str,
        segment_id: i64,
        timeout: f64,
    ) -> PyResult<(i64, i64, bool)> {
        let seg = scoped_segment(scope, stream, segment_id);
        self.run(py, timeout, "segment_info", self.segment_info_async(&seg))
    }

    /// A pipelined appender on one segment (events in the order given, no routing).
    #[pyo3(signature = (scope, stream, segment_id, timeout = 30.0))]
    fn appender(&self, py: Python<'_>, scope: &str, stream: &str, segment_id: i64, timeout: f64) -> PyResult<append::Appender> {
        self.appender_on(py, &scoped_segment(scope, stream, segment_id), timeout)
    }

    /// The crate's event writer on `stream` (routing by key, ordered per key).
    fn writer(&self, scope: &str, stream: &str) -> Writer {
        let w = self.factory.create_event_writer(scoped_stream(scope, stream));
        Writer { handle: self.factory.runtime_handle(), inner: Mutex::new(Some(w)) }
    }
}

/// One EventWriter. After a failed or timed-out call it is closed (its state unknown).
#[pyclass(module = "sb_pravega", frozen)]
struct Writer {
    handle: tokio::runtime::Handle,
    inner: Mutex<Option<EventWriter>>,
}

/// Run `f` on the object in `inner` (a writer or an appender) on `handle`'s runtime; a
/// failed, timed-out or interrupted call drops the object (its state is unknown then).
fn run_closing<S, T, F>(
    inner: &Mutex<Option<S>>,
    handle: &tokio::runtime::Handle,
    py: Python<'_>,
    timeout: f64,
    what: &str,
    kind: &str,
    f: F,
) -> PyResult<T>
where
    S: Send,
    T: Send,
    F: for<'s> FnOnce(&'s mut S) -> std::pin::Pin<Box<dyn Future<Output = Res<T>> + Send + 's>> + Send,
{
    // one call at a time: blocking on the lock with the GIL held could deadlock
    let Ok(mut guard) = inner.try_lock() else {
        return Err(PravegaError::new_err(format!("{} is in use by another thread", kind)));
    };
    let Some(obj) = guard.as_mut() else {
        return Err(PravegaError::new_err(format!("{} is closed (an earlier call failed or timed out)", kind)));
    };
    let r = wait(py, timeout, what, |fut| handle.block_on(fut), f(obj));
    if r.is_err() {
        *guard = None;
    }
    r
}

impl Writer {
    fn run<T, F>(&self, py: Python<'_>, timeout: f64, what: &str, f: F) -> PyResult<T>
    where
        T: Send,
        F: for<'w> FnOnce(&'w mut EventWriter) -> std::pin::Pin<Box<dyn Future<Output = Res<T>> + Send + 'w>> + Send,
    {
        run_closing(&self.inner, &self.handle, py, timeout, what, "writer", f)
    }
}

#[pymethods]
impl Writer {
    /// Queue events [(payload, routing key or None)]; returns once the writer took them
    /// (it holds at most 16 MB unacknowledged). `flush` says whether they were stored.
    #[pyo3(signature = (events, timeout = 30.0))]
    fn write(&self, py: Python<'_>, events: Vec<(PyBackedBytes, Option<String>)>, timeout: f64) -> PyResult<()> {
        // PyBackedBytes borrows each bytes object (a Vec<u8> would be extracted byte by byte)
        self.run(py, timeout, "write", move |w| {
            Box::pin(async move {
                for (payload, key) in events {
                    let payload = payload.to_vec();
                    // the per-event receiver is dropped: flush waits on the writer's own handles
                    let _ = match key {
                        Some(k) => w.write_event_by_routing_key(k, payload).await,
                        None => w.write_event(payload).await,
                    };
                }
                Ok(())
            })
        })
    }

    /// Wait until Pravega acknowledged every event written so far.
    #[pyo3(signature = (timeout = 60.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.run(py, timeout, "flush", |w| {
            Box::pin(async move { w.flush().await.map_err(|e| Error::Other(format!("flush: {}", e))) })
        })
    }

    /// Drop the writer (call `flush` first to know the events were stored).
    fn close(&self) {
        self.inner.lock().unwrap().take();
    }
}

#[pymodule]
fn sb_pravega(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<Writer>()?;
    m.add_class::<append::Appender>()?;
    m.add("PravegaError", m.py().get_type::<PravegaError>())?;
    m.add("NotFound", m.py().get_type::<NotFound>())?;
    m.add("Truncated", m.py().get_type::<Truncated>())?;
    Ok(())
}
