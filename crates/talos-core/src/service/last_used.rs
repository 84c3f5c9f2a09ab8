//! The asynchronous `last_used_time` writer (`last_used.*`, reference.md §9–10).
//!
//! Verification never waits for it: a key that verified is offered to a bounded queue with
//! `try_send` (at most once per key per UTC day per node), and `num_workers` writers take
//! batches of up to `flush_size` keys, written in one storage call each. A batch is written when
//! it is full or `flush_interval` after its first key arrived, whichever comes first. When the
//! queue is full the key is not queued and not marked as written today, so a later verification
//! offers it again; `talos_last_used_dropped_total` counts those. [`Writer::close`] writes what
//! is queued and stops the workers (graceful shutdown).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use talos_storage::{KeyRecord, Store, Touch};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

use super::LogThrottle;
use crate::config::LastUsedConfig;

/// The longest [`Writer::close`] waits for the queue to be written.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// The writer's settings, from `last_used.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) queue_size: usize,
    pub(crate) flush_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) num_workers: usize,
}

impl From<&LastUsedConfig> for Settings {
    fn from(c: &LastUsedConfig) -> Self {
        // The loader refuses zeros; the floors keep a hand-built config from wedging the writer.
        Settings {
            queue_size: c.queue_size.max(1),
            flush_size: c.flush_size.max(1),
            flush_interval: c.flush_interval.get().max(Duration::from_millis(1)),
            num_workers: c.num_workers.max(1),
        }
    }
}

/// The queue and its workers.
pub(crate) struct Writer {
    /// `None` once closed (or when there is no runtime to run workers on).
    tx: std::sync::Mutex<Option<mpsc::Sender<Touch>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Keys this node queued today: at most one write per key per UTC day.
    queued: moka::sync::Cache<(Uuid, String), i64>,
    dropped: LogThrottle,
}

impl Writer {
    /// Starts the workers on the current tokio runtime; without one, nothing is written.
    pub(crate) fn start(store: Arc<dyn Store>, s: Settings) -> Writer {
        let (tx, rx) = mpsc::channel(s.queue_size);
        let rx = Arc::new(Mutex::new(rx));
        let (tx, workers) = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let workers = (0..s.num_workers)
                    .map(|_| handle.spawn(work(store.clone(), rx.clone(), s)))
                    .collect();
                (Some(tx), workers)
            }
            Err(_) => (None, Vec::new()),
        };
        Writer {
            tx: std::sync::Mutex::new(tx),
            workers: Mutex::new(workers),
            queued: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(86_400))
                .build(),
            dropped: LogThrottle::new(Duration::from_secs(60)),
        }
    }

    /// Offers `rec` for a `last_used_time` write at `now`; never waits.
    pub(crate) fn offer(&self, rec: &KeyRecord, now: DateTime<Utc>) {
        let today = now.date_naive();
        if rec.last_used_time.is_some_and(|t| t.date_naive() == today) {
            return;
        }
        let day = i64::from(chrono::Datelike::num_days_from_ce(&today));
        let k = (rec.nid, rec.key_id.clone());
        if self.queued.get(&k) == Some(day) {
            return;
        }
        let Some(tx) = self.tx.lock().ok().and_then(|t| t.clone()) else {
            return;
        };
        let touch = Touch {
            nid: rec.nid,
            kind: rec.kind,
            key_id: rec.key_id.clone(),
            at: now,
        };
        match tx.try_send(touch) {
            Ok(()) => self.queued.insert(k, day),
            Err(_) => {
                metrics::counter!("talos_last_used_dropped_total").increment(1);
                if let Some(suppressed) = self.dropped.allow() {
                    tracing::warn!(
                        suppressed,
                        "last_used queue is full (last_used.queue_size); last_used_time of some keys is written on a later use"
                    );
                }
            }
        }
    }

    /// Writes what is queued, then stops the workers; later offers are ignored. Bounded by
    /// [`CLOSE_WAIT`], so that a stalled database cannot hold up a shutdown: what is not written
    /// by then is dropped (and logged).
    pub(crate) async fn close(&self) {
        drop(self.tx.lock().ok().and_then(|mut t| t.take()));
        let workers = std::mem::take(&mut *self.workers.lock().await);
        let aborts: Vec<_> = workers.iter().map(JoinHandle::abort_handle).collect();
        let all = async {
            for w in workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, all).await.is_err() {
            tracing::warn!(
                "last_used_time writes still pending after {CLOSE_WAIT:?} at shutdown; dropped"
            );
            for a in aborts {
                a.abort();
            }
        }
    }
}

/// One worker: takes a batch (full, or `flush_interval` after its first key), writes it, repeats;
/// returns when the queue is closed and empty.
async fn work(store: Arc<dyn Store>, rx: Arc<Mutex<mpsc::Receiver<Touch>>>, s: Settings) {
    loop {
        let mut batch = Vec::with_capacity(s.flush_size);
        let open = {
            // One worker fills its batch at a time; the others write theirs meanwhile.
            let mut rx = rx.lock().await;
            let open = rx.recv_many(&mut batch, s.flush_size).await > 0;
            let deadline = tokio::time::Instant::now() + s.flush_interval;
            while open && batch.len() < s.flush_size {
                let want = s.flush_size - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, want)).await {
                    Ok(n) if n > 0 => {}
                    _ => break, // the interval is over, or the queue closed
                }
            }
            open
        };
        if !batch.is_empty() {
            write(&*store, &batch).await;
        }
        if !open {
            return;
        }
    }
}

async fn write(store: &dyn Store, batch: &[Touch]) {
    let span = tracing::debug_span!("talos.last_used.flush", keys = batch.len());
    match store.touch_keys(batch).instrument(span).await {
        Ok(()) => metrics::counter!("talos_last_used_written_total").increment(batch.len() as u64),
        Err(e) => {
            metrics::counter!("talos_last_used_failed_total").increment(batch.len() as u64);
            tracing::warn!(error = %e, keys = batch.len(), "last_used_time write failed");
        }
    }
}
