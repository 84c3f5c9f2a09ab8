//! Every statement the store sends, written once for both backends, and what a connection must
//! be able to run ([`KeyConn`]).
//!
//! diesel's query types do not depend on the backend (only boxed queries name it), so each
//! builder below returns one type, named by `#[dsl::auto_type]` after the function (`by_id`
//! returns a `by_id`). Binds are owned values, so the queries are `'static` and their types need
//! no lifetimes. Rows are read with the table's default selection, which lists the columns in the
//! order of [`Row`]'s fields (and of the `RETURNING` list that `get_result` adds to `INSERT`,
//! `UPDATE` and `DELETE`).

use std::future::Future;

use diesel::SqliteConnection;
use diesel::backend::Backend;
use diesel::dsl;
use diesel::query_builder::{BoxedSelectStatement, FromClause};
use diesel::query_dsl::methods as dsl_methods;
use diesel::result::QueryResult;
use diesel::{
    BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods, QueryDsl,
};
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncConnection, AsyncConnectionCore, AsyncPgConnection, RunQueryDsl};

use crate::model::{KeyStatus, ListQuery};
use crate::row::{
    BalanceRow, NewUsageRow, PatchRow, Row, STATUS_ACTIVE, STATUS_REVOKED, UsageRow,
    actor_balances, api_keys, cache_invalidations, usage_records,
};

/// `WHERE nid = ? AND key_id = ? AND kind = ?`: the primary key plus the kind check.
#[dsl::auto_type]
pub(crate) fn by_id(nid: String, kind: &'static str, key_id: String) -> _ {
    api_keys::table
        .filter(api_keys::nid.eq(nid))
        .filter(api_keys::key_id.eq(key_id))
        .filter(api_keys::kind.eq(kind))
}

/// Stored-active and unexpired at `now` (unix microseconds).
#[dsl::auto_type]
pub(crate) fn active_at(now: i64) -> _ {
    let active: i16 = STATUS_ACTIVE;
    api_keys::status.eq(active).and(
        api_keys::expire_time
            .is_null()
            .or(api_keys::expire_time.gt(now)),
    )
}

/// `EXISTS (by_id)`: tells a missing key from one in the wrong state after a conditional write
/// changed nothing.
#[dsl::auto_type]
pub(crate) fn exists(nid: String, kind: &'static str, key_id: String) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::select(dsl::exists(key))
}

#[dsl::auto_type]
pub(crate) fn insert(row: Row) -> _ {
    dsl::insert_into(api_keys::table).values(row)
}

/// The row of an earlier request with the same request id.
#[dsl::auto_type]
pub(crate) fn by_request_id(nid: String, kind: &'static str, request_id: String) -> _ {
    api_keys::table
        .filter(api_keys::nid.eq(nid))
        .filter(api_keys::kind.eq(kind))
        .filter(api_keys::request_id.eq(request_id))
}

#[dsl::auto_type]
pub(crate) fn update(nid: String, kind: &'static str, key_id: String, changes: PatchRow) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::update(key).set(changes)
}

/// The columns a revocation (or the revoking half of a rotation) sets.
#[dsl::auto_type]
fn revoked(reason: i16, description: Option<String>, at: i64) -> _ {
    let revoked: i16 = STATUS_REVOKED;
    let reason: Option<i16> = Some(reason);
    (
        api_keys::status.eq(revoked),
        api_keys::revocation_reason.eq(reason),
        api_keys::revocation_description.eq(description),
        api_keys::update_time.eq(at),
    )
}

/// Revokes the key if it is stored-active. The status condition makes the check-and-set atomic:
/// of two concurrent revokes, the second finds no active row.
#[dsl::auto_type]
pub(crate) fn revoke(
    nid: String,
    kind: &'static str,
    key_id: String,
    reason: i16,
    description: Option<String>,
    at: i64,
) -> _ {
    let active: i16 = STATUS_ACTIVE;
    let key: by_id = by_id(nid, kind, key_id);
    let changes: revoked = revoked(reason, description, at);
    dsl::update(key.filter(api_keys::status.eq(active))).set(changes)
}

/// Revokes the key if it is stored-active and unexpired at `at` (the revoking half of a rotation).
#[dsl::auto_type]
pub(crate) fn revoke_active(
    nid: String,
    kind: &'static str,
    key_id: String,
    reason: i16,
    description: Option<String>,
    at: i64,
) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    let active: active_at = active_at(at);
    let changes: revoked = revoked(reason, description, at);
    dsl::update(key.filter(active)).set(changes)
}

#[dsl::auto_type]
pub(crate) fn delete(nid: String, kind: &'static str, key_id: String) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::delete(key)
}

/// Sets `last_used_time`, only ever forward, so batched last-used flushes arriving out of order
/// cannot set an older time.
#[dsl::auto_type]
pub(crate) fn touch(nid: String, kind: &'static str, key_id: String, at: i64) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::update(
        key.filter(
            api_keys::last_used_time
                .is_null()
                .or(api_keys::last_used_time.lt(at)),
        ),
    )
    .set(api_keys::last_used_time.eq(at))
}

/// Keys with their actor's balance row, if any: verification caches whether the actor is metered.
#[dsl::auto_type]
fn keys_with_balance() -> _ {
    api_keys::table.left_join(
        actor_balances::table.on(actor_balances::nid
            .eq(api_keys::nid)
            .and(actor_balances::actor_id.eq(api_keys::actor_id))),
    )
}

/// A key's columns and its actor's quota (NULL: the actor has no balance row).
#[dsl::auto_type]
fn key_and_quota() -> _ {
    let key: <api_keys::table as diesel::Table>::AllColumns = api_keys::all_columns;
    (key, actor_balances::quota_micros.nullable())
}

/// A key by id with its actor's quota (`get_key`). The join is on the balance table's primary
/// key, so it adds one index probe to the primary-key lookup.
#[dsl::auto_type]
pub(crate) fn lookup_by_id(nid: String, kind: &'static str, key_id: String) -> _ {
    let joined: keys_with_balance = keys_with_balance();
    let cols: key_and_quota = key_and_quota();
    joined
        .filter(api_keys::nid.eq(nid))
        .filter(api_keys::key_id.eq(key_id))
        .filter(api_keys::kind.eq(kind))
        .select(cols)
}

/// Only `(nid, hash)` in the WHERE clause: every other index also starts with `nid`, and with
/// `kind` in the clause a planner without statistics (a fresh import, autovacuum off) picked
/// `(nid, kind, …)` and filtered every imported row (324 ms a lookup at a million keys). Issued
/// keys have no hash, so the caller checks the kind on the row found instead. Joined with the
/// actor's quota like [`lookup_by_id`].
#[dsl::auto_type]
pub(crate) fn by_hashes(nid: String, hashes: Vec<Vec<u8>>) -> _ {
    let joined: keys_with_balance = keys_with_balance();
    let cols: key_and_quota = key_and_quota();
    joined
        .filter(api_keys::nid.eq(nid))
        .filter(api_keys::hash.eq_any(hashes))
        .select(cols)
        .limit(1_i64)
}

/// Replaces an imported key's hash, only if it still is `old`.
#[dsl::auto_type]
pub(crate) fn rehash(
    nid: String,
    kind: &'static str,
    key_id: String,
    old: Vec<u8>,
    new: Vec<u8>,
    secret_id: String,
) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::update(key.filter(api_keys::hash.eq(old))).set((
        api_keys::hash.eq(new),
        api_keys::hash_secret_id.eq(secret_id),
    ))
}

/// `SELECT count(*)` of a network's keys active at `now` (unix microseconds), for quotas.
#[dsl::auto_type]
pub(crate) fn count_active(nid: String, now: i64) -> _ {
    let active: active_at = active_at(now);
    api_keys::table
        .filter(api_keys::nid.eq(nid))
        .filter(active)
        .count()
}

#[dsl::auto_type]
pub(crate) fn count_unknown_secret(kind: &'static str, known: Vec<String>) -> _ {
    api_keys::table
        .filter(api_keys::kind.eq(kind))
        .filter(
            api_keys::hash_secret_id
                .is_null()
                .or(api_keys::hash_secret_id.ne_all(known)),
        )
        .count()
}

#[dsl::auto_type]
pub(crate) fn add_invalidation(nid: String, cache_key: String, at: i64) -> _ {
    dsl::insert_into(cache_invalidations::table).values((
        cache_invalidations::nid.eq(nid),
        cache_invalidations::cache_key.eq(cache_key),
        cache_invalidations::create_time.eq(at),
    ))
}

#[dsl::auto_type]
pub(crate) fn pending_invalidations(limit: i64) -> _ {
    cache_invalidations::table
        .select((
            cache_invalidations::id,
            cache_invalidations::nid,
            cache_invalidations::cache_key,
        ))
        .order(cache_invalidations::id.asc())
        .limit(limit)
}

#[dsl::auto_type]
pub(crate) fn remove_invalidations(ids: Vec<i64>) -> _ {
    dsl::delete(cache_invalidations::table.filter(cache_invalidations::id.eq_any(ids)))
}

// ---- metering: key credits, actor balances, usage records

/// Applies a due refill: resets the balance to the refill amount and records `boundary`. The
/// condition on the last boundary applied makes each boundary refill once, however many
/// verifications race to it; the one on the interval ignores a caller whose copy of the key is
/// older than an update that changed it.
#[dsl::auto_type]
pub(crate) fn refill_credits(
    nid: String,
    kind: &'static str,
    key_id: String,
    interval: i16,
    boundary: i64,
) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    dsl::update(
        key.filter(api_keys::credits_refill_interval.eq(interval))
            .filter(api_keys::credits_refilled_at.lt(boundary)),
    )
    .set((
        api_keys::credits_remaining.eq(api_keys::credits_refill_amount),
        api_keys::credits_refilled_at.eq(boundary),
    ))
}

/// Spends `cost` from an active key's credits if at least `need` remain: the check and the debit
/// are one statement, so no interleaving of verifications on any number of nodes overspends.
#[dsl::auto_type]
pub(crate) fn spend_credits(
    nid: String,
    kind: &'static str,
    key_id: String,
    cost: i64,
    need: i64,
) -> _ {
    let active: i16 = STATUS_ACTIVE;
    let key: by_id = by_id(nid, kind, key_id);
    dsl::update(
        key.filter(api_keys::status.eq(active))
            .filter(api_keys::credits_remaining.ge(need)),
    )
    .set(api_keys::credits_remaining.eq(api_keys::credits_remaining - cost))
    .returning(api_keys::credits_remaining)
}

/// A key's stored status and balance, to explain a spend that changed nothing.
#[dsl::auto_type]
pub(crate) fn credit_state(nid: String, kind: &'static str, key_id: String) -> _ {
    let key: by_id = by_id(nid, kind, key_id);
    key.select((api_keys::status, api_keys::credits_remaining))
}

#[dsl::auto_type]
pub(crate) fn balance(nid: String, actor_id: String) -> _ {
    actor_balances::table
        .filter(actor_balances::nid.eq(nid))
        .filter(actor_balances::actor_id.eq(actor_id))
}

#[dsl::auto_type]
pub(crate) fn insert_balance(row: BalanceRow) -> _ {
    dsl::insert_into(actor_balances::table).values(row)
}

/// Sets the quota; the remaining balance moves by the change (what was spent stays spent).
/// SQL evaluates every `SET` expression against the old row.
#[dsl::auto_type]
pub(crate) fn set_quota(nid: String, actor_id: String, quota: i64, at: i64) -> _ {
    let row: balance = balance(nid, actor_id);
    dsl::update(row).set((
        actor_balances::remaining_micros
            .eq(actor_balances::remaining_micros + quota - actor_balances::quota_micros),
        actor_balances::quota_micros.eq(quota),
        actor_balances::update_time.eq(at),
    ))
}

/// Adds `amount` to the remaining balance (a negative amount debits).
#[dsl::auto_type]
pub(crate) fn add_balance(nid: String, actor_id: String, amount: i64, at: i64) -> _ {
    let row: balance = balance(nid, actor_id);
    dsl::update(row).set((
        actor_balances::remaining_micros.eq(actor_balances::remaining_micros + amount),
        actor_balances::update_time.eq(at),
    ))
}

#[dsl::auto_type]
pub(crate) fn insert_usage(row: NewUsageRow) -> _ {
    dsl::insert_into(usage_records::table).values(row)
}

/// An actor's usage records, newest first.
#[dsl::auto_type]
pub(crate) fn usage_history(nid: String, actor_id: String, limit: i64) -> _ {
    usage_records::table
        .filter(usage_records::nid.eq(nid))
        .filter(usage_records::actor_id.eq(actor_id))
        .order(usage_records::id.desc())
        .limit(limit)
}

/// One multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING nid, key_id`: rows not returned hit an
/// existing key id, hash or request id. Run by each backend's batch code (`pg.rs`, `sqlite.rs`):
/// SQLite runs it on its synchronous connection. (diesel cannot name the type of an
/// `ON CONFLICT` statement, hence the list of what it can run on.)
pub(crate) fn insert_batch(
    rows: &[Row],
) -> impl LoadQuery<'_, AsyncPgConnection, (String, String)>
+ diesel::query_dsl::LoadQuery<'_, SqliteConnection, (String, String)> {
    dsl::insert_into(api_keys::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning((api_keys::nid, api_keys::key_id))
}

/// The list query before its optional filters: boxed, because which filters apply is known only
/// at run time, and a boxed query names its backend.
pub(crate) type List<DB> =
    BoxedSelectStatement<'static, api_keys::SqlType, FromClause<api_keys::table>, DB>;

#[dsl::auto_type]
fn list_base(nid: String, kind: &'static str, limit: i64) -> _ {
    api_keys::table
        .filter(api_keys::nid.eq(nid))
        .filter(api_keys::kind.eq(kind))
        .order(api_keys::key_id.desc())
        .limit(limit)
}

#[dsl::auto_type]
fn actor_is(actor: String) -> _ {
    api_keys::actor_id.eq(actor)
}

#[dsl::auto_type]
fn before(key_id: String) -> _ {
    api_keys::key_id.lt(key_id)
}

/// Stored-active but expired at `now`: what a reader sees as EXPIRED.
#[dsl::auto_type]
fn expired_at(now: i64) -> _ {
    let active: i16 = STATUS_ACTIVE;
    api_keys::status
        .eq(active)
        .and(api_keys::expire_time.le(now))
}

#[dsl::auto_type]
fn is_revoked() -> _ {
    let revoked: i16 = STATUS_REVOKED;
    api_keys::status.eq(revoked)
}

/// A backend that can build the list query. Implemented for every backend diesel can box
/// the list query for, so the builder is written once.
pub(crate) trait ListBackend: Backend + Sized {
    fn list(nid: String, kind: &'static str, query: &ListQuery) -> List<Self>;
}

impl<DB> ListBackend for DB
where
    DB: Backend,
    list_base: dsl_methods::BoxedDsl<'static, DB, Output = List<DB>>,
    List<DB>: dsl_methods::FilterDsl<actor_is, Output = List<DB>>
        + dsl_methods::FilterDsl<before, Output = List<DB>>
        + dsl_methods::FilterDsl<active_at, Output = List<DB>>
        + dsl_methods::FilterDsl<expired_at, Output = List<DB>>
        + dsl_methods::FilterDsl<is_revoked, Output = List<DB>>,
{
    fn list(nid: String, kind: &'static str, query: &ListQuery) -> List<Self> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let now = query.now.timestamp_micros();
        let mut q = list_base(nid, kind, limit).into_boxed::<DB>();
        if let Some(actor) = &query.actor_id {
            q = q.filter(actor_is(actor.clone()));
        }
        if let Some(after) = &query.after {
            q = q.filter(before(after.clone()));
        }
        // The status filter works on the status a reader sees at `now`, so EXPIRED keys are
        // stored-active rows whose expiry has passed.
        match query.status {
            None => q,
            Some(KeyStatus::Active) => q.filter(active_at(now)),
            Some(KeyStatus::Expired) => q.filter(expired_at(now)),
            Some(KeyStatus::Revoked) => q.filter(is_revoked()),
        }
    }
}

/// A backend's own connection type (`AsyncPgConnection`, `SqliteConn`), as opposed to the
/// pool's guard around it. `Fetch` and `Execute` are implemented for these alone, so that on a
/// guard, method calls resolve to the connection it derefs to.
pub(crate) trait Connection: AsyncConnection + PoolableConnection + 'static {}

/// `Self` (a connection) can run query `Q` and read `U`s back. Generic code calls these instead
/// of diesel's `RunQueryDsl`, so that "this connection can run that query" is a bound on the
/// connection (and can be a supertrait of [`KeyConn`]) rather than on the query type.
pub(crate) trait Fetch<Q, U> {
    /// The one row (`Err(NotFound)` if none; callers use `.optional()`).
    fn fetch_one(&mut self, q: Q) -> impl Future<Output = QueryResult<U>> + Send;
    fn fetch_all(&mut self, q: Q) -> impl Future<Output = QueryResult<Vec<U>>> + Send;
}

impl<C, Q, U> Fetch<Q, U> for C
where
    C: Connection,
    Q: LoadQuery<'static, C, U> + 'static,
    U: Send + 'static,
{
    fn fetch_one(&mut self, q: Q) -> impl Future<Output = QueryResult<U>> + Send {
        q.get_result(self)
    }

    fn fetch_all(&mut self, q: Q) -> impl Future<Output = QueryResult<Vec<U>>> + Send {
        q.load(self)
    }
}

/// `Self` (a connection) can execute statement `Q`.
pub(crate) trait Execute<Q> {
    fn execute(&mut self, q: Q) -> impl Future<Output = QueryResult<usize>> + Send;
}

impl<C, Q> Execute<Q> for C
where
    C: Connection,
    Q: ExecuteDsl<C> + 'static,
{
    fn execute(&mut self, q: Q) -> impl Future<Output = QueryResult<usize>> + Send {
        RunQueryDsl::execute(q, self)
    }
}

/// A connection the shared store code (`ops.rs`) can run on: every statement above, with the
/// result type it is read as. The compiler checks this list for each backend where
/// `KeyConn` is implemented (`pg.rs`, `sqlite.rs`); a statement a backend cannot run is a
/// compile error there.
pub(crate) trait KeyConn:
    Connection<Backend: ListBackend>
    + Fetch<lookup_by_id, (Row, Option<i64>)>
    + Fetch<exists, bool>
    + Fetch<insert, Row>
    + Fetch<by_request_id, Row>
    + Fetch<update, Row>
    + Fetch<revoke, Row>
    + Fetch<revoke_active, Row>
    + Fetch<delete, Row>
    + Fetch<by_hashes, (Row, Option<i64>)>
    + Fetch<rehash, Row>
    + Fetch<count_active, i64>
    + Fetch<count_unknown_secret, i64>
    + Fetch<pending_invalidations, (i64, String, String)>
    + Fetch<spend_credits, Option<i64>>
    + Fetch<credit_state, (i16, Option<i64>)>
    + Fetch<balance, BalanceRow>
    + Fetch<insert_balance, BalanceRow>
    + Fetch<set_quota, BalanceRow>
    + Fetch<add_balance, BalanceRow>
    + Fetch<usage_history, UsageRow>
    + Fetch<List<<Self as AsyncConnectionCore>::Backend>, Row>
    + Execute<touch>
    + Execute<add_invalidation>
    + Execute<remove_invalidations>
    + Execute<refill_credits>
    + Execute<insert_usage>
{
}
