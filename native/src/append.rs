//! Appends to one segment, pipelined: `SetupAppend`, then `AppendBlockEnd` blocks sent while
//! earlier ones are unacknowledged (up to WINDOW bytes), acknowledgements read by a task of
//! their own. The crate's segment writer keeps one block in flight at a time, which bounds
//! a single segment's write rate by the segment store's round trip.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pravega_client_shared::ScopedSegment;
use pravega_wire_protocol::client_connection::{ClientConnection, ClientConnectionWriteHalf};
use pravega_wire_protocol::commands::{AppendBlockEndCommand, Command, EventCommand, SetupAppendCommand};
use pravega_wire_protocol::wire_commands::{Replies, Requests};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use tokio::sync::{watch, Semaphore};

use super::{next_request_id, run_closing, Client, Error, Res};

/// Bytes of blocks sent and not yet acknowledged.
const WINDOW: usize = 32 * 1024 * 1024;
/// Largest block (the segment store takes up to 8 MiB + 8 per append) and events per block.
const BLOCK_BYTES: usize = 2 * 1024 * 1024;
const BLOCK_EVENTS: usize = 2000;
/// Window accounting unit (a semaphore permit).
const UNIT: usize = 1024;

fn random_writer_id() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.write_u32(std::process::id());
        h.finish() as u128
    };
    (half() << 64) | half()
}

/// What the acknowledgement task shares with the sender.
struct Acks {
    /// (last event number of a block, window permits it holds), oldest first
    inflight: Mutex<VecDeque<(i64, u32)>>,
    window: Semaphore,
    /// the first failure; the window is closed then, so a waiting sender wakes
    failed: Mutex<Option<String>>,
    acked: watch::Sender<i64>,
}

impl Acks {
    fn fail(&self, why: String) {
        let mut f = self.failed.lock().unwrap();
        if f.is_none() {
            *f = Some(why);
        }
        self.window.close();
        self.acked.send_modify(|_| {});
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap().clone()
    }
}

struct State {
    w: ClientConnectionWriteHalf,
    writer_id: u128,
    segment: String,
    sent: i64,
    acks: Arc<Acks>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for State {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A pipelined appender on one segment (a writer id of its own). After a failed, timed-out
/// or interrupted call it is closed: what reached the segment is for the caller to find out.
#[pyclass(module = "sb_pravega", frozen)]
pub(crate) struct Appender {
    handle: tokio::runtime::Handle,
    inner: Mutex<Option<State>>,
}

impl Client {
    async fn open_appender(&self, seg: &ScopedSegment) -> Res<State> {
        let token = self.token(seg).await?;
        let mut endpoint = self.endpoint(seg).await?;
        let writer_id = random_writer_id();
        for _ in 0..4 {
            let mut conn = self.connect(&endpoint).await?;
            // this connection carries appends from now on: never back into the pool
            conn.set_failure();
            let setup = Requests::SetupAppend(SetupAppendCommand {
                request_id: next_request_id(),
                writer_id,
                segment: seg.to_string(),
                delegation_token: token.clone(),
            });
            conn.write(&setup).await.map_err(|e| Error::Other(format!("write to {}: {}", endpoint.0, e)))?;
            let reply = conn.read().await.map_err(|e| Error::Other(format!("read from {}: {}", endpoint.0, e)))?;
            match reply {
                Replies::AppendSetup(_) => {
                    let (mut r, w) = conn.split();
                    let (acked, _) = watch::channel(0i64);
                    let acks = Arc::new(Acks {
                        inflight: Mutex::new(VecDeque::new()),
                        window: Semaphore::new(WINDOW / UNIT),
                        failed: Mutex::new(None),
                        acked,
                    });
                    let a = acks.clone();
                    let name = seg.to_string();
                    let reader = tokio::spawn(async move {
                        loop {
                            match r.read().await {
                                Ok(Replies::DataAppended(cmd)) => {
                                    let mut inflight = a.inflight.lock().unwrap();
                                    while inflight.front().is_some_and(|(last, _)| *last <= cmd.event_number) {
                                        let (_, permits) = inflight.pop_front().unwrap();
                                        a.window.add_permits(permits as usize);
                                    }
                                    drop(inflight);
                                    a.acked.send_replace(cmd.event_number);
                                }
                                Ok(Replies::SegmentIsSealed(_)) => return a.fail(format!("segment {} is sealed", name)),
                                Ok(Replies::NoSuchSegment(_)) => return a.fail(format!("segment {} does not exist", name)),
                                Ok(other) => return a.fail(format!("unexpected reply to an append on {}: {:?}", name, other)),
                                Err(e) => return a.fail(format!("append connection to {} failed: {}", name, e)),
                            }
                        }
                    });
                    return Ok(State { w, writer_id, segment: seg.to_string(), sent: 0, acks, reader });
                }
                Replies::WrongHost(_) => endpoint = self.fresh_endpoint(seg).await?,
                Replies::SegmentIsSealed(_) => return Err(Error::Other(format!("segment {} is sealed", seg))),
                Replies::NoSuchSegment(_) => return Err(Error::NotFound(format!("segment {} does not exist", seg))),
                other => return Err(Error::Other(format!("unexpected reply to SetupAppend on {}: {:?}", seg, other))),
            }
        }
        Err(Error::Other(format!("segment {}: wrong host after retries", seg)))
    }

    pub(crate) fn appender_on(&self, py: Python<'_>, seg: &ScopedSegment, timeout: f64) -> PyResult<Appender> {
        let state = self.run(py, timeout, "open appender", self.open_appender(seg))?;
        Ok(Appender { handle: self.factory.runtime_handle(), inner: Mutex::new(Some(state)) })
    }
}

impl State {
    async fn send_block(&mut self, data: Vec<u8>, events: usize, payload: usize) -> Res<()> {
        let permits = data.len().div_ceil(UNIT).clamp(1, WINDOW / UNIT) as u32;
        match self.acks.window.acquire_many(permits).await {
            Ok(p) => p.forget(),
            Err(_) => return Err(Error::Other(self.acks.failure().unwrap_or_else(|| "appender closed".into()))),
        }
        self.sent += events as i64;
        self.acks.inflight.lock().unwrap().push_back((self.sent, permits));
        let block = Requests::AppendBlockEnd(AppendBlockEndCommand {
            writer_id: self.writer_id,
            size_of_whole_events: payload as i32,
            data,
            num_event: events as i32,
            last_event_number: self.sent,
            request_id: next_request_id(),
        });
        self.w
            .write(&block)
            .await
            .map_err(|e| Error::Other(format!("append to {}: {}", self.segment, e)))
    }

    async fn write(&mut self, events: Vec<PyBackedBytes>) -> Res<()> {
        let mut block: Vec<u8> = Vec::new();
        let mut n = 0;
        for payload in events {
            let framed = EventCommand { data: payload.to_vec() }
                .write_fields()
                .map_err(|e| Error::Other(format!("frame an event: {:?}", e)))?;
            if n > 0 && (block.len() + framed.len() > BLOCK_BYTES || n >= BLOCK_EVENTS) {
                let size = block.len();
                self.send_block(std::mem::take(&mut block), n, size).await?;
                n = 0;
            }
            block.extend_from_slice(&framed);
            n += 1;
        }
        if n > 0 {
            let size = block.len();
            self.send_block(block, n, size).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Res<()> {
        let mut rx = self.acks.acked.subscribe();
        loop {
            if let Some(why) = self.acks.failure() {
                return Err(Error::Other(why));
            }
            if *rx.borrow_and_update() >= self.sent {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(Error::Other(format!("append connection to {} closed", self.segment)));
            }
        }
    }
}

#[pymethods]
impl Appender {
    /// Append the payloads in order; returns once they are sent (at most 32 MiB wait for
    /// acknowledgement). `flush` says whether they were stored.
    #[pyo3(signature = (events, timeout = 30.0))]
    fn write(&self, py: Python<'_>, events: Vec<PyBackedBytes>, timeout: f64) -> PyResult<()> {
        // PyBackedBytes borrows each bytes object (a Vec<u8> would be extracted byte by byte)
        self.run(py, timeout, "append", move |s| Box::pin(s.write(events)))
    }

    /// Wait until the segment store acknowledged every event appended so far.
    #[pyo3(signature = (timeout = 60.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.run(py, timeout, "flush", |s| Box::pin(s.flush()))
    }

    /// Drop the connection (call `flush` first to know the events were stored).
    fn close(&self) {
        self.inner.lock().unwrap().take();
    }
}

impl Appender {
    fn run<T, F>(&self, py: Python<'_>, timeout: f64, what: &str, f: F) -> PyResult<T>
    where
        T: Send,
        F: for<'s> FnOnce(&'s mut State) -> std::pin::Pin<Box<dyn std::future::Future<Output = Res<T>> + Send + 's>>
            + Send,
    {
        run_closing(&self.inner, &self.handle, py, timeout, what, "appender", f)
    }
}
