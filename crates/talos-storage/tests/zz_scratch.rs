#[path = "contract/harness.rs"]
mod harness;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use harness::*;
use talos_storage::*;

#[tokio::test]
async fn scratch() {
    let (_dir, dsn) = sqlite_dsn();
    migrate_up(&dsn).await.unwrap();
    let store = connect(&dsn, &StoreOptions { max_conns: 1, ..opts() }).await.unwrap();
    let path = dsn.trim_start_matches("sqlite://").to_owned();
    let mut locker = diesel::SqliteConnection::establish(&path).unwrap();
    locker.batch_execute("BEGIN IMMEDIATE").unwrap();
    let n = nid();
    let r = tokio::time::timeout(std::time::Duration::from_millis(100), store.insert_key(&issued(n, &uuid_id()))).await;
    eprintln!("timed out: {:?}", r.is_err());
    locker.batch_execute("COMMIT").unwrap();
    store.ping().await.unwrap();
}
