#[path = "contract/harness.rs"]
mod harness;
use harness::*;
use talos_storage::*;

#[tokio::test(flavor = "multi_thread")]
async fn scratch() {
    let (_dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.unwrap();
    let store = connect(&dsn, &StoreOptions { max_conns: 1, ..opts() }).await.unwrap();
    let n = nid();
    let mut timeouts = 0;
    for round in 0..100u32 {
        let keys: Vec<KeyRecord> = (0..500).map(|i| imported(n, round * 500 + i)).collect();
        let t = std::time::Instant::now();
        let r = tokio::time::timeout(std::time::Duration::from_micros(200), store.insert_keys_batch(&keys)).await;
        if r.is_err() { timeouts += 1; }
        let el = t.elapsed();
        store.ping().await.unwrap();
        if round < 3 { eprintln!("round {round}: {:?} {el:?} ping after {:?}", r.is_err(), t.elapsed()); }
    }
    eprintln!("timeouts {timeouts}");
}
