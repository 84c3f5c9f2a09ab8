//! `talos usage ingest`, `talos balances get|set-quota|top-up`, and the `--credits` flags of
//! issue, import and update.

use talos_client::{
    ActorBalance, CreditsInput, CreditsRefillInput, IngestUsageRequest, RefillInterval,
};

use crate::Ctx;
use crate::cli::{BalancesCommand, CreditArgs, IngestArgs, RefillArg};
use crate::exit::CliError;
use crate::output::fields;

impl CreditArgs {
    /// `--credits`/`--refill-amount`/`--refill-interval` as requested credits, if any is given.
    pub fn input(&self) -> Option<CreditsInput> {
        if self.credits.is_none() && self.refill_amount.is_none() {
            return None;
        }
        Some(CreditsInput {
            remaining: self.credits,
            refill: self.refill_amount.map(|amount| CreditsRefillInput {
                amount: Some(amount),
                interval: self.refill_interval.map(|i| match i {
                    RefillArg::Daily => RefillInterval::Daily,
                    RefillArg::Monthly => RefillInterval::Monthly,
                }),
            }),
        })
    }
}

pub async fn ingest(ctx: &Ctx, a: IngestArgs) -> Result<(), CliError> {
    let req = IngestUsageRequest {
        actor_id: a.actor,
        key_id: a.key_id.unwrap_or_default(),
        usage_type: a.usage_type.unwrap_or_default(),
        usage_amount: a.amount,
        cost_micros: Some(a.cost_micros),
        model: a.model.unwrap_or_default(),
        request_id: a.request_id,
        session_id: a.session_id.unwrap_or_default(),
    };
    let resp = ctx.client()?.ingest_usage(&req).await?;
    if ctx.out.is_document() {
        return ctx.out.document(&resp.raw);
    }
    let accepted = if resp.accepted {
        "yes"
    } else {
        "no (this request id was ingested before; nothing debited)"
    };
    ctx.out.text(&fields(&[
        ("accepted", accepted.to_owned()),
        ("remaining", resp.balance_remaining.to_string()),
        ("quota", quota(resp.balance_quota)),
    ]));
    Ok(())
}

fn quota(q: i64) -> String {
    if q == 0 {
        "unlimited".into()
    } else {
        q.to_string()
    }
}

fn print_balance(ctx: &Ctx, raw: &serde_json::Value, b: &ActorBalance) -> Result<(), CliError> {
    if ctx.out.is_document() {
        return ctx.out.document(raw);
    }
    if ctx.out.quiet {
        ctx.out.text(&b.remaining_micros.to_string());
        return Ok(());
    }
    ctx.out.text(&fields(&[
        ("actor", b.actor_id.clone()),
        ("quota", quota(b.quota_micros)),
        ("remaining", b.remaining_micros.to_string()),
    ]));
    Ok(())
}

pub async fn balances(ctx: &Ctx, command: BalancesCommand) -> Result<(), CliError> {
    let client = ctx.client()?;
    let resp = match command {
        BalancesCommand::Get { actor } => client.get_actor_balance(&actor).await?,
        BalancesCommand::SetQuota {
            actor,
            quota_micros,
        } => client.set_actor_quota(&actor, quota_micros).await?,
        BalancesCommand::TopUp {
            actor,
            amount_micros,
        } => client.top_up_actor(&actor, amount_micros).await?,
    };
    print_balance(ctx, &resp.raw, &resp.body)
}
