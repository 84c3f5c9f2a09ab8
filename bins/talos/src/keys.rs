//! `talos keys issue|verify|batch-verify|revoke|derive-token|self-revoke`.

use std::io::BufRead;

use serde_json::{Value, json};
use talos_client::{
    DeriveTokenRequest, IpRestriction, IssueApiKeyRequest, RateLimitPolicyInput,
    RevokeApiKeyRequest, SelfRevokeApiKeyRequest, VerifyOptions,
};

use crate::Ctx;
use crate::cli::{
    BatchVerifyArgs, DeriveArgs, IssueArgs, KeyFields, RevokeArgs, SelfRevokeArgs, VerifyArgs,
    split_list,
};
use crate::exit::CliError;
use crate::output::{self, fields, inactive_reason, time};

/// Server limit of `apiKeys:batchVerify`.
const BATCH_VERIFY_MAX: usize = 100;

impl KeyFields {
    /// `--scopes` as a list, if given.
    pub fn scopes_list(&self) -> Option<Vec<String>> {
        self.scopes.as_deref().map(split_list)
    }

    /// `--rate-limit-quota`/`--rate-limit-window` as a policy; the window defaults to 60s.
    pub fn policy(&self) -> Option<RateLimitPolicyInput> {
        self.rate_limit_quota.map(|quota| RateLimitPolicyInput {
            quota: Some(quota),
            window: self
                .rate_limit_window
                .clone()
                .unwrap_or_else(|| "60s".into()),
            unit: None,
        })
    }

    /// `--allowed-cidrs` as an IP restriction, if given.
    pub fn ip_restriction(&self) -> Option<IpRestriction> {
        self.allowed_cidrs.as_deref().map(|s| IpRestriction {
            allowed_cidrs: split_list(s),
        })
    }
}

pub(crate) fn print_secret_result(ctx: &Ctx, key: &talos_client::ApiKey, secret: &str) {
    if ctx.out.quiet {
        ctx.out.text(secret);
        return;
    }
    let shown = if secret.is_empty() {
        "(not returned: an earlier request with this request id created the key)"
    } else {
        secret
    };
    let mut rows = output::key_rows(key);
    rows.push(("secret", shown.to_owned()));
    ctx.out.text(&fields(&rows));
    if !secret.is_empty() {
        ctx.out.info("Store the secret now: it is shown only once.");
    }
}

pub async fn issue(ctx: &Ctx, a: IssueArgs) -> Result<(), CliError> {
    let req = IssueApiKeyRequest {
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
    let resp = ctx.client()?.issue(&req).await?;
    if ctx.out.is_document() {
        return ctx.out.document(&resp.raw);
    }
    print_secret_result(ctx, &resp.issued_api_key, &resp.secret);
    Ok(())
}

pub async fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<(), CliError> {
    let resp = ctx
        .client()?
        .verify(
            &a.credential,
            VerifyOptions {
                no_cache: a.no_cache,
                cost: a.cost,
            },
        )
        .await?;
    if ctx.out.is_document() {
        ctx.out.document(&resp.raw)?;
    } else if !ctx.out.quiet {
        ctx.out.text(&output::verify_details(&resp));
    }
    if resp.active() {
        return Ok(());
    }
    // In table format the reason is already on stdout; in json/yaml say it on stderr for humans.
    let note = (ctx.out.is_document() && !ctx.out.quiet)
        .then(|| format!("key is not active: {}", inactive_reason(&resp)));
    Err(CliError::Negative(note))
}

/// Credentials from the arguments and `--file` (one per line, blank lines skipped).
fn read_credentials(a: &BatchVerifyArgs) -> Result<Vec<String>, CliError> {
    let mut creds = a.credentials.clone();
    if let Some(path) = &a.file {
        let reader = crate::batch_input::open_input(path)?;
        for (i, line) in reader.lines().enumerate() {
            let line = line
                .map_err(|e| CliError::Usage(format!("{}: line {}: {e}", path.display(), i + 1)))?;
            let line = line.trim();
            if !line.is_empty() {
                creds.push(line.to_owned());
            }
        }
    }
    if creds.is_empty() {
        return Err(CliError::Usage("no credentials given".into()));
    }
    Ok(creds)
}

pub async fn batch_verify(ctx: &Ctx, a: BatchVerifyArgs) -> Result<(), CliError> {
    let creds = read_credentials(&a)?;
    let client = ctx.client()?;
    let opts = VerifyOptions {
        no_cache: a.no_cache,
        cost: a.cost,
    };
    let mut typed = Vec::with_capacity(creds.len());
    let mut raws: Vec<Value> = Vec::new();
    let mut single_doc = None;
    let chunks: Vec<&[String]> = creds.chunks(BATCH_VERIFY_MAX).collect();
    for chunk in &chunks {
        let resp = client.batch_verify(chunk, opts).await?;
        if chunks.len() == 1 {
            single_doc = Some(resp.raw.clone());
        } else if let Some(Value::Array(items)) = resp.raw.get("results") {
            raws.extend(items.iter().cloned());
        }
        typed.extend(resp.body.results);
    }
    let inactive = typed.iter().filter(|r| !r.active()).count();
    if ctx.out.is_document() {
        // One request: the server's document as is. Several: the same shape with all results, in order.
        ctx.out
            .document(&single_doc.unwrap_or_else(|| json!({ "results": raws })))?;
    } else if !ctx.out.quiet {
        let rows: Vec<Vec<String>> = typed
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (result, reason) = if r.active() {
                    ("active", String::new())
                } else {
                    ("inactive", inactive_reason(r))
                };
                vec![
                    i.to_string(),
                    result.into(),
                    r.key_id.clone(),
                    r.actor_id.clone(),
                    time(r.expire_time),
                    reason,
                ]
            })
            .collect();
        ctx.out.text(&output::table(
            &["#", "RESULT", "KEY_ID", "ACTOR", "EXPIRES", "REASON"],
            &rows,
        ));
    }
    if inactive == 0 {
        return Ok(());
    }
    let note = (!ctx.out.quiet)
        .then(|| format!("{inactive} of {} credentials are not active", typed.len()));
    Err(CliError::Negative(note))
}

pub(crate) fn revoke_request(
    reason: Option<crate::cli::ReasonArg>,
    text: Option<String>,
) -> RevokeApiKeyRequest {
    RevokeApiKeyRequest {
        reason: reason.map(Into::into),
        reason_text: text.filter(|t| !t.is_empty()),
        ..Default::default()
    }
}

/// Reports a bodiless success (204): nothing on stdout for json/yaml unless the server sent a document.
pub(crate) fn report_done(ctx: &Ctx, raw: &Value, what: String) -> Result<(), CliError> {
    if ctx.out.is_document() {
        if !raw.is_null() {
            ctx.out.document(raw)?;
        }
        ctx.out.info(&what);
    } else if !ctx.out.quiet {
        ctx.out.text(&what);
    }
    Ok(())
}

pub async fn revoke(ctx: &Ctx, a: RevokeArgs) -> Result<(), CliError> {
    let resp = ctx
        .client()?
        .revoke(&a.key_id, &revoke_request(a.reason, a.reason_text))
        .await?;
    report_done(ctx, &resp.raw, format!("Revoked key {}", a.key_id))
}

pub async fn derive(ctx: &Ctx, a: DeriveArgs) -> Result<(), CliError> {
    let req = DeriveTokenRequest {
        credential: a.credential,
        algorithm: Some(a.algorithm.into()),
        ttl: a.ttl,
        scopes: a.scopes.as_deref().map(split_list).unwrap_or_default(),
        custom_claims: a.claims,
    };
    let resp = ctx.client()?.derive(&req).await?;
    if ctx.out.is_document() {
        return ctx.out.document(&resp.raw);
    }
    let t = &resp.token;
    if ctx.out.quiet {
        ctx.out.text(&t.token);
    } else {
        ctx.out.text(&fields(&[
            ("token", t.token.clone()),
            ("expires", time(t.expire_time)),
            ("scopes", t.scopes.join(",")),
            ("claims", Value::Object(t.claims.clone()).to_string()),
        ]));
    }
    Ok(())
}

pub async fn self_revoke(ctx: &Ctx, a: SelfRevokeArgs) -> Result<(), CliError> {
    let req = SelfRevokeApiKeyRequest {
        credential: a.credential,
        reason: a.reason.map(Into::into),
    };
    let resp = ctx.client()?.self_revoke(&req).await?;
    report_done(ctx, &resp.raw, "Revoked the key".into())
}
