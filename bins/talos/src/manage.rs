//! `talos keys issued …` and `talos keys imported …` (everything but batch import).

use serde_json::{Value, json};
use talos_client::{
    ApiKey, ImportApiKeyRequest, ListParams, RotateApiKeyRequest, UpdateApiKeyRequest,
};

use crate::Ctx;
use crate::cli::{ImportArgs, ListArgs, RevokeArgs, RotateArgs, UpdateArgs, split_list};
use crate::exit::CliError;
use crate::keys::{print_secret_result, report_done, revoke_request};
use crate::output::{key_details, key_table};

/// Which collection a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `issuedApiKeys`.
    Issued,
    /// `importedApiKeys`.
    Imported,
}

impl Kind {
    fn list_field(self) -> &'static str {
        match self {
            Kind::Issued => "issued_api_keys",
            Kind::Imported => "imported_api_keys",
        }
    }
}

fn print_key(ctx: &Ctx, raw: &Value, key: &ApiKey) -> Result<(), CliError> {
    if ctx.out.is_document() {
        ctx.out.document(raw)
    } else {
        ctx.out.text(&if ctx.out.quiet {
            key.key_id.clone()
        } else {
            key_details(key)
        });
        Ok(())
    }
}

pub async fn get(ctx: &Ctx, kind: Kind, key_id: &str) -> Result<(), CliError> {
    let client = ctx.client()?;
    let resp = match kind {
        Kind::Issued => client.get_issued(key_id).await?,
        Kind::Imported => client.get_imported(key_id).await?,
    };
    print_key(ctx, &resp.raw, &resp.body)
}

fn list_params(a: &ListArgs) -> ListParams {
    ListParams {
        page_size: a.page_size,
        page_token: a.page_token.clone(),
        filter: a.filter.clone(),
        actor_id: a.actor.clone(),
        status: a.status.clone(),
    }
}

/// One page: (keys, raw key documents, next token, whole raw document).
async fn page(
    ctx: &Ctx,
    kind: Kind,
    p: &ListParams,
) -> Result<(Vec<ApiKey>, String, Value), CliError> {
    let client = ctx.client()?;
    Ok(match kind {
        Kind::Issued => {
            let r = client.list_issued(p).await?;
            (r.body.issued_api_keys, r.body.next_page_token, r.raw)
        }
        Kind::Imported => {
            let r = client.list_imported(p).await?;
            (r.body.imported_api_keys, r.body.next_page_token, r.raw)
        }
    })
}

pub async fn list(ctx: &Ctx, kind: Kind, a: ListArgs) -> Result<(), CliError> {
    let mut params = list_params(&a);
    let (mut keys, mut next, first_raw) = page(ctx, kind, &params).await?;
    let field = kind.list_field();
    let mut doc = first_raw;
    if a.all {
        // Follow the cursor; the printed document is the server's shape with every page's items and no token.
        let mut raw_items: Vec<Value> = doc
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        while !next.is_empty() {
            params.page_token = Some(std::mem::take(&mut next));
            let (more, token, raw) = page(ctx, kind, &params).await?;
            keys.extend(more);
            raw_items.extend(
                raw.get(field)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            next = token;
        }
        doc = json!({ field: raw_items, "next_page_token": "" });
    }
    if ctx.out.is_document() {
        return ctx.out.document(&doc);
    }
    if ctx.out.quiet {
        let ids: String = keys.iter().map(|k| format!("{}\n", k.key_id)).collect();
        if !ids.is_empty() {
            ctx.out.text(&ids);
        }
    } else if keys.is_empty() {
        ctx.out.text("No keys found.");
    } else {
        ctx.out.text(&key_table(&keys));
    }
    if !next.is_empty() {
        ctx.out
            .info(&format!("More keys: --page-token {next} (or --all)"));
    }
    Ok(())
}

const MASK_PATHS: &[&str] = &[
    "name",
    "scopes",
    "metadata",
    "rate_limit_policy",
    "ip_restriction",
    "credits",
];

pub async fn update(ctx: &Ctx, kind: Kind, a: UpdateArgs) -> Result<(), CliError> {
    let req = UpdateApiKeyRequest {
        name: a.name,
        scopes: a.fields.scopes_list(),
        metadata: a.fields.metadata.clone(),
        rate_limit_policy: a.fields.policy(),
        ip_restriction: a.fields.ip_restriction(),
        credits: a.credits.input(),
        ..Default::default()
    };
    let mask: Vec<String> = match &a.update_mask {
        Some(m) => split_list(m),
        None => req.implied_mask().into_iter().map(str::to_owned).collect(),
    };
    if mask.is_empty() {
        return Err(CliError::Usage(format!(
            "nothing to update: give --name, --scopes, --metadata, --rate-limit-quota, --allowed-cidrs or --credits \
             (or --update-mask with {})",
            MASK_PATHS.join(", ")
        )));
    }
    let mask_refs: Vec<&str> = mask.iter().map(String::as_str).collect();
    let client = ctx.client()?;
    let resp = match kind {
        Kind::Issued => client.update_issued(&a.key_id, &req, &mask_refs).await?,
        Kind::Imported => client.update_imported(&a.key_id, &req, &mask_refs).await?,
    };
    print_key(ctx, &resp.raw, &resp.body)
}

pub async fn rotate(ctx: &Ctx, a: RotateArgs) -> Result<(), CliError> {
    let req = RotateApiKeyRequest {
        name: a.name,
        scopes: a.fields.scopes_list(),
        metadata: a.fields.metadata.clone(),
        rate_limit_policy: a.fields.policy().map(Some),
        ip_restriction: a.fields.ip_restriction(),
        visibility: None,
    };
    let resp = ctx.client()?.rotate(&a.key_id, &req).await?;
    if ctx.out.is_document() {
        return ctx.out.document(&resp.raw);
    }
    print_secret_result(ctx, &resp.issued_api_key, &resp.secret);
    ctx.out.info(&format!(
        "Old key {} is now revoked (superseded).",
        a.key_id
    ));
    Ok(())
}

pub async fn revoke(ctx: &Ctx, kind: Kind, a: RevokeArgs) -> Result<(), CliError> {
    let client = ctx.client()?;
    let req = revoke_request(a.reason, a.reason_text);
    let resp = match kind {
        Kind::Issued => client.revoke_issued(&a.key_id, &req).await?,
        Kind::Imported => client.revoke_imported(&a.key_id, &req).await?,
    };
    report_done(ctx, &resp.raw, format!("Revoked key {}", a.key_id))
}

pub async fn import(ctx: &Ctx, a: ImportArgs) -> Result<(), CliError> {
    let req = ImportApiKeyRequest {
        raw_key: a.raw_key,
        name: a.name.unwrap_or_default(),
        actor_id: a.actor,
        scopes: a.fields.scopes_list().unwrap_or_default(),
        ttl: a.ttl,
        metadata: a.fields.metadata.clone(),
        rate_limit_policy: a.fields.policy(),
        ip_restriction: a.fields.ip_restriction(),
        request_id: a.request_id,
        visibility: None,
        credits: a.credits.input(),
    };
    let resp = ctx.client()?.import(&req).await?;
    print_key(ctx, &resp.raw, &resp.imported_api_key)
}

pub async fn delete(ctx: &Ctx, key_id: &str) -> Result<(), CliError> {
    let resp = ctx.client()?.delete_imported(key_id).await?;
    report_done(ctx, &resp.raw, format!("Deleted imported key {key_id}"))
}
