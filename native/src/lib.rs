//! sb_pravega: minimal PyO3 binding over the pravega-client 0.3.7 crates.
//!
//! Controller calls go through `ClientFactory::controller_client()` (public API).
//! Segment reads / segment info are sent as raw wire commands
//! (`ReadSegment`, `GetStreamSegmentInfo`) over a connection pool built from the
//! public `pravega-wire-protocol` / `pravega-connection-pool` crates, because the
//! pravega-client crate keeps its `segment` module (AsyncSegmentReaderImpl,
//! SegmentMetadataClient, RawClientImpl) `pub(crate)` in 0.3.7.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use pravega_client::client_factory::ClientFactory;
use pravega_client_config::ClientConfigBuilder;
use pravega_client_shared::{PravegaNodeUri, Scope, ScopedSegment, ScopedStream, Segment, Stream};
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

/// Errors produced inside the async part, mapped to Python exceptions afterwards.
enum Error {
    NotFound(String),
    Other(String),
}

impl Error {
    fn into_py(self) -> PyErr {
        match self {
            Error::NotFound(m) => PyValueError::new_err(m),
            Error::Other(m) => PyRuntimeError::new_err(m),
        }
    }
}

type Res<T> = Result<T, Error>;

#[pyclass(module = "sb_pravega", frozen)]
struct Client {
    // Owns the tokio runtime (multi-thread, worker threads = #cores) and the controller client.
    factory: ClientFactory,
    // Our own segment-store connection pool (the factory's pool is private).
    pool: ConnectionPool<SegmentConnectionManager>,
}

impl Client {
    /// Run `fut` on the factory's runtime with the GIL released, bounded by `timeout` seconds.
    fn run<T, F>(&self, py: Python<'_>, timeout: f64, what: &str, fut: F) -> PyResult<T>
    where
        T: Send,
        F: Future<Output = Res<T>> + Send,
    {
        if !(timeout > 0.0 && timeout.is_finite()) {
            return Err(PyValueError::new_err("timeout must be a positive number of seconds"));
        }
        let dur = Duration::from_secs_f64(timeout);
        let rt = self.factory.runtime();
        let out = py.allow_threads(|| rt.block_on(async move { tokio::time::timeout(dur, fut).await }));
        match out {
            Err(_elapsed) => Err(PyTimeoutError::new_err(format!("{} timed out after {}s", what, timeout))),
            Ok(r) => r.map_err(Error::into_py),
        }
    }

    /// One request/reply exchange with the segment store hosting `endpoint`.
    async fn send(&self, endpoint: &PravegaNodeUri, request: Requests) -> Res<Replies> {
        let conn = self
            .pool
            .get_connection(endpoint.clone())
            .await
            .map_err(|e| Error::Other(format!("connect to segment store {}: {}", endpoint.0, e)))?;
        let mut conn = ClientConnectionImpl::new(conn);
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
        self.factory
            .controller_client()
            .get_endpoint_for_segment(seg)
            .await
            .map_err(|e| Error::Other(format!("get_endpoint_for_segment({}): {:?}", seg, e.error)))
    }

    async fn token(&self, seg: &ScopedSegment) -> Res<String> {
        // Empty string when auth is disabled on the controller.
        self.factory
            .controller_client()
            .get_or_refresh_delegation_token_for(ScopedStream::from(seg))
            .await
            .map_err(|e| Error::Other(format!("delegation token for {}: {:?}", seg, e.error)))
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
                Replies::WrongHost(_) => endpoint = self.endpoint(seg).await?,
                other => return Err(Error::Other(format!("unexpected reply to GetStreamSegmentInfo: {:?}", other))),
            }
        }
        Err(Error::Other(format!("segment {}: wrong host after retries", seg)))
    }

    async fn read_segment_async(&self, seg: &ScopedSegment, offset: i64, length: i64) -> Res<Vec<u8>> {
        // The segment store long-polls a ReadSegment at the tail of an open segment (it
        // waits for new data), so clamp the read to the write offset known right now.
        let (_start, write_offset, _sealed) = self.segment_info_async(seg).await?;
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
                    return Err(Error::NotFound(format!(
                        "segment {} truncated: offset {} < start offset {}",
                        seg, pos, cmd.start_offset
                    )))
                }
                Replies::NoSuchSegment(_) => {
                    return Err(Error::NotFound(format!("segment {} does not exist", seg)))
                }
                Replies::WrongHost(_) if wrong_host < 3 => {
                    wrong_host += 1;
                    endpoint = self.endpoint(seg).await?;
                }
                other => return Err(Error::Other(format!("unexpected reply to ReadSegment: {:?}", other))),
            }
        }
        Ok(out)
    }
}

fn ctrl_err<E: std::fmt::Debug>(what: &str, e: E) -> Error {
    Error::Other(format!("{}: {:?}", what, e))
}

#[pymethods]
impl Client {
    #[new]
    fn new(controller_uri: &str) -> PyResult<Self> {
        if !PravegaNodeUri::is_well_formed(controller_uri.to_string()) {
            return Err(PyValueError::new_err(format!(
                "controller_uri must be [tcp://]host:port, got {:?}",
                controller_uri
            )));
        }
        let config = ClientConfigBuilder::default()
            .controller_uri(controller_uri)
            .is_auth_enabled(false)
            .is_tls_enabled(false)
            .build()
            .map_err(|e| PyValueError::new_err(format!("client config: {}", e)))?;
        let cf = <dyn ConnectionFactory>::create(ConnectionFactoryConfig::from(&config));
        let pool = ConnectionPool::new(SegmentConnectionManager::new(cf, config.max_connections_in_pool));
        // ClientFactory::new builds its own multi-thread tokio runtime; the controller
        // gRPC channel connects lazily, so this does not touch the network.
        let factory = ClientFactory::new(config);
        Ok(Client { factory, pool })
    }

    /// [(segment_id, low, high)] of the stream's current (open) segments, sorted by low key.
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn current_segments(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<Vec<(i64, f64, f64)>> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "current_segments", async {
            let segs = self
                .factory
                .controller_client()
                .get_current_segments(&s)
                .await
                .map_err(|e| ctrl_err("get_current_segments", e.error))?;
            let mut v: Vec<(i64, f64, f64)> = segs
                .key_segment_map
                .values()
                .map(|r| (r.scoped_segment.segment.number, r.min_key.0, r.max_key.0))
                .collect();
            v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
            Ok(v)
        })
    }

    /// {segment_id: start_offset} of the stream's head segments.
    #[pyo3(signature = (scope, stream, timeout = 30.0))]
    fn head_segments(&self, py: Python<'_>, scope: &str, stream: &str, timeout: f64) -> PyResult<std::collections::HashMap<i64, i64>> {
        let s = scoped_stream(scope, stream);
        self.run(py, timeout, "head_segments", async {
            let m = self
                .factory
                .controller_client()
                .get_head_segments(&s)
                .await
                .map_err(|e| ctrl_err("get_head_segments", e.error))?;
            Ok(m.into_iter().map(|(seg, off)| (seg.number, off)).collect())
        })
    }

    /// [(successor_id, low, high, [predecessor_ids])] sorted by successor id.
    /// Empty list when the segment is still open.
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
            let r = self
                .factory
                .controller_client()
                .get_successors(&seg)
                .await
                .map_err(|e| ctrl_err("get_successors", e.error))?;
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

    /// Raw bytes [offset, offset+length) of one segment (events incl. their 8-byte headers).
    /// Returns fewer bytes if the segment ends (sealed) or the current tail is reached.
    #[pyo3(signature = (scope, stream, segment_id, offset, length, timeout = 30.0))]
    fn read_segment<'py>(
        &self,
        py: Python<'py>,
        scope: &str,
        stream: &str,
        segment_id: i64,
        offset: i64,
        length: i64,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if offset < 0 || length < 0 {
            return Err(PyValueError::new_err("offset and length must be >= 0"));
        }
        let seg = scoped_segment(scope, stream, segment_id);
        let data = self.run(py, timeout, "read_segment", self.read_segment_async(&seg, offset, length))?;
        Ok(PyBytes::new(py, &data))
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
}

#[pymodule]
fn sb_pravega(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    Ok(())
}
