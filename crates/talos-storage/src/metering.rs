//! The metering operations of the store (docs/metering.md), written once for both backends like
//! `ops.rs`, which delegates to these: key credits spent with one conditional update, actor
//! balances, and usage ingestion that takes its request id and debits in one transaction.
//!
//! Exactness rests on the database alone: every check-and-change is one statement (a spend, a
//! refill, a debit) or one transaction (an ingestion), so nodes need no coordination and a node
//! that crashes mid-request leaves either all or nothing of its change.

use chrono::{DateTime, Utc};
use diesel::OptionalExtension;
use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::conn::db_err;
use crate::error::{Result, StorageError};
use crate::model::{
    ActorBalance, CreditSpend, IngestOutcome, KeyKind, RefillInterval, UsageRecord,
};
use crate::ops::{Database, TxError, is_unique_violation};
use crate::row::{BalanceRow, NewUsageRow, STATUS_ACTIVE, UsageRow, kind_str, micros, nid_str};
use crate::sql::{self, Execute, Fetch};

pub(crate) async fn spend_credits<D: Database>(
    db: &D,
    nid: Uuid,
    kind: KeyKind,
    key_id: &str,
    cost: i64,
    refill: Option<(RefillInterval, DateTime<Utc>)>,
) -> Result<CreditSpend> {
    if cost <= 0 {
        return Err(StorageError::Internal(format!(
            "spend_credits: cost must be positive (got {cost})"
        )));
    }
    let (nid, kind) = (nid_str(nid), kind_str(kind));
    let mut conn = db.conn().await?;
    if let Some((interval, boundary)) = refill {
        let q = sql::refill_credits(
            nid.clone(),
            kind,
            key_id.to_owned(),
            interval.to_i16(),
            micros(boundary),
        );
        conn.execute(q).await.map_err(db_err)?;
    }
    let q = sql::spend_credits(nid.clone(), kind, key_id.to_owned(), cost, cost);
    if let Some(left) = conn.fetch_one(q).await.optional().map_err(db_err)? {
        return Ok(match left {
            Some(remaining) => CreditSpend::Spent { remaining },
            None => CreditSpend::Unmetered,
        });
    }
    // Nothing spent: say why, from the row as it is now.
    let q = sql::credit_state(nid, kind, key_id.to_owned());
    let state: Option<(i16, Option<i64>)> = conn.fetch_one(q).await.optional().map_err(db_err)?;
    Ok(match state {
        Some((STATUS_ACTIVE, Some(remaining))) => CreditSpend::Insufficient { remaining },
        Some((STATUS_ACTIVE, None)) => CreditSpend::Unmetered,
        _ => CreditSpend::Inactive,
    })
}

pub(crate) async fn get_balance<D: Database>(
    db: &D,
    nid: Uuid,
    actor_id: &str,
) -> Result<Option<ActorBalance>> {
    let q = sql::balance(nid_str(nid), actor_id.to_owned());
    let row: Option<BalanceRow> = db
        .conn()
        .await?
        .fetch_one(q)
        .await
        .optional()
        .map_err(db_err)?;
    row.map(BalanceRow::into_balance).transpose()
}

/// Updates an actor's balance row with `update`, or inserts `fresh` when there is none. An insert
/// that loses to a concurrent one (unique violation) retries the update, which then finds the row.
async fn upsert_balance<D, Q>(
    db: &D,
    update: impl Fn() -> Q,
    fresh: BalanceRow,
) -> Result<ActorBalance>
where
    D: Database,
    D::Conn: Fetch<Q, BalanceRow>,
{
    let mut conn = db.conn().await?;
    for _ in 0..2 {
        if let Some(row) = conn.fetch_one(update()).await.optional().map_err(db_err)? {
            return row.into_balance();
        }
        // Named in full: the bound on `Q` would otherwise shadow the connection's other `Fetch`es.
        let insert = sql::insert_balance(fresh.clone());
        match <D::Conn as Fetch<sql::insert_balance, BalanceRow>>::fetch_one(&mut conn, insert)
            .await
        {
            Ok(row) => return row.into_balance(),
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(db_err(e)),
        }
    }
    Err(StorageError::Unavailable(
        "actor balance changed concurrently; retry".into(),
    ))
}

pub(crate) async fn set_quota<D: Database>(
    db: &D,
    nid: Uuid,
    actor_id: &str,
    quota_micros: i64,
    at: DateTime<Utc>,
) -> Result<ActorBalance> {
    let (nid, at) = (nid_str(nid), micros(at));
    let fresh = BalanceRow {
        nid: nid.clone(),
        actor_id: actor_id.to_owned(),
        quota_micros,
        remaining_micros: quota_micros,
        update_time: at,
    };
    let update = || sql::set_quota(nid.clone(), actor_id.to_owned(), quota_micros, at);
    upsert_balance(db, update, fresh).await
}

pub(crate) async fn top_up<D: Database>(
    db: &D,
    nid: Uuid,
    actor_id: &str,
    amount_micros: i64,
    at: DateTime<Utc>,
) -> Result<ActorBalance> {
    let (nid, at) = (nid_str(nid), micros(at));
    let fresh = BalanceRow {
        nid: nid.clone(),
        actor_id: actor_id.to_owned(),
        quota_micros: 0,
        remaining_micros: amount_micros,
        update_time: at,
    };
    let update = || sql::add_balance(nid.clone(), actor_id.to_owned(), amount_micros, at);
    upsert_balance(db, update, fresh).await
}

pub(crate) async fn ingest_usage<D: Database>(
    db: &D,
    record: &UsageRecord,
) -> Result<IngestOutcome> {
    let row = NewUsageRow::from_record(record);
    let (nid, actor, cost, at) = (
        row.nid.clone(),
        row.actor_id.clone(),
        row.cost_micros,
        row.create_time,
    );
    let mut pooled = db.conn().await?;
    let conn: &mut D::Conn = &mut pooled;
    let debited = conn
        .transaction::<_, TxError, _>(async |c| {
            // Taking the request id is the insert itself: a concurrent twin waits on the unique
            // index and then fails, so exactly one of them goes on to debit.
            c.execute(sql::insert_usage(row)).await?;
            let debit = sql::add_balance(nid, actor, -cost, at);
            Ok(c.fetch_one(debit).await.optional()?)
        })
        .await;
    match debited {
        Ok(balance) => Ok(IngestOutcome {
            accepted: true,
            balance: balance.map(BalanceRow::into_balance).transpose()?,
        }),
        Err(TxError::Db(e)) if is_unique_violation(&e) && record.request_id.is_some() => {
            drop(pooled);
            Ok(IngestOutcome {
                accepted: false,
                balance: get_balance(db, record.nid, &record.actor_id).await?,
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn usage_history<D: Database>(
    db: &D,
    nid: Uuid,
    actor_id: &str,
    limit: usize,
) -> Result<Vec<UsageRecord>> {
    let q = sql::usage_history(
        nid_str(nid),
        actor_id.to_owned(),
        i64::try_from(limit).unwrap_or(i64::MAX),
    );
    let rows: Vec<UsageRow> = db.conn().await?.fetch_all(q).await.map_err(db_err)?;
    rows.into_iter().map(UsageRow::into_record).collect()
}
