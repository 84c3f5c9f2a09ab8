//! The `last_used_time` writer follows `last_used.*`: batches of `flush_size`, `num_workers`
//! writers in parallel, a bounded queue that drops instead of making verification wait, and a
//! shutdown that writes what is queued.

use std::future::Future;
use std::sync::{Arc, Mutex};

use talos_core::*;
use talos_storage::{Layer, Layered, StoreOptions};
use tokio::sync::{Semaphore, watch};

use super::{NIL, SECRET_A, config, spec, vreq};

/// Counts batch writes and can hold them back.
struct Writes {
    batches: Mutex<usize>,
    /// Writes wait for a permit; plenty of them unless a test closes the gate.
    gate: Semaphore,
    /// How many writes are running (waiting at the gate included).
    in_flight: watch::Sender<usize>,
}

impl Layer for Writes {
    async fn around<T, F>(&self, method: &'static str, op: F) -> talos_storage::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = talos_storage::Result<T>> + Send + 'static,
    {
        if method != "touch_keys" {
            return op.await;
        }
        self.in_flight.send_modify(|n| *n += 1);
        let _permit = self.gate.acquire().await.unwrap();
        let r = op.await;
        *self.batches.lock().unwrap() += 1;
        self.in_flight.send_modify(|n| *n -= 1);
        r
    }
}

/// A service whose store counts batch writes; `open: false` holds them at the gate.
async fn service(yaml: &str, open: bool) -> (Service, Arc<Writes>) {
    let inner = talos_storage::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    let writes = Arc::new(Writes {
        batches: Mutex::new(0),
        gate: Semaphore::new(if open { 1000 } else { 0 }),
        in_flight: watch::channel(0).0,
    });
    let store = Arc::new(Layered::new(inner, writes.clone()));
    let c = config(yaml, &[("TALOS_SECRETS_HMAC_CURRENT", SECRET_A)]);
    let service = Service::new(&c, store, Arc::new(talos_cache::NoopCache)).unwrap();
    (service, writes)
}

async fn last_used(s: &Service, key_id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    s.get_key(NIL, KeyKind::Issued, key_id)
        .await
        .unwrap()
        .last_used_time
}

async fn issue_and_verify(s: &Service) -> String {
    let key = s.issue(NIL, spec("u")).await.unwrap();
    assert!(s.verify(NIL, &vreq(&key.secret)).await.result.is_ok());
    key.key.key_id
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_of_flush_size_and_the_rest_at_shutdown() {
    let yaml = "last_used: { flush_size: 3, flush_interval: \"1h\", num_workers: 1 }\n";
    let (s, writes) = service(yaml, true).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(issue_and_verify(&s).await);
    }
    // The first three fill a batch, written at once; the interval (1h) holds the other two.
    let mut in_flight = writes.in_flight.subscribe();
    while *writes.batches.lock().unwrap() == 0 {
        in_flight.changed().await.unwrap();
    }
    assert_eq!(*writes.batches.lock().unwrap(), 1);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(last_used(&s, id).await.is_some(), i < 3, "key {i}");
    }
    s.shutdown().await;
    assert_eq!(
        *writes.batches.lock().unwrap(),
        2,
        "shutdown writes the rest in one batch"
    );
    for id in &ids {
        assert!(last_used(&s, id).await.is_some(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_writers_and_a_full_queue_never_make_verification_wait() {
    let yaml = "last_used: { flush_size: 1, queue_size: 1, num_workers: 2 }\n";
    let (s, writes) = service(yaml, false).await;
    let mut in_flight = writes.in_flight.subscribe();
    let first = issue_and_verify(&s).await;
    let _ = in_flight.wait_for(|n| *n == 1).await;
    let second = issue_and_verify(&s).await;
    // Two writers: both writes run at once (held at the gate).
    let _ = in_flight.wait_for(|n| *n == 2).await;
    let queued = issue_and_verify(&s).await;
    // Both writers are busy and the queue (one key) is full: this verification does not wait,
    // and its key is not queued.
    let dropped = issue_and_verify(&s).await;
    writes.gate.add_permits(1000);
    s.shutdown().await;
    for id in [&first, &second, &queued] {
        assert!(last_used(&s, id).await.is_some(), "{id}");
    }
    assert_eq!(last_used(&s, &dropped).await, None);
}
