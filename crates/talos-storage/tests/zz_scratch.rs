#[path = "contract/harness.rs"]
mod harness;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use harness::*;
use talos_storage::*;

#[tokio::test(flavor = "multi_thread")]
async fn scratch() {
    let (_dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.unwrap();
    let store = connect(&dsn, &StoreOptions { max_conns: 1, ..opts() }).await.unwrap();
    let path = dsn.trim_start_matches("sqlite://").to_owned();
    let mut locker = diesel::SqliteConnection::establish(&path).unwrap();
    locker.batch_execute("BEGIN IMMEDIATE").unwrap();
    let n = nid();
    let st = store.clone();
    let h = tokio::spawn(async move { st.insert_key(&issued(n, &uuid_id())).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    h.abort();
    let r = h.await;
    eprintln!("aborted: {:?}", r.is_err());
    let t = std::time::Instant::now();
    let p = tokio::spawn({ let s = store.clone(); async move { s.ping().await } }).await;
    eprintln!("ping: {p:?} after {:?}", t.elapsed());
    locker.batch_execute("COMMIT").unwrap();
}
