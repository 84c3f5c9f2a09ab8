//! The HTTP client: one method per endpoint.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, HeaderValue};
use reqwest::{Method, RequestBuilder, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ClientError;
use crate::response::{Exchanged, Response, VerifyOptions};
use crate::types::*;

const ADMIN: &[&str] = &["v2alpha1", "admin"];

/// Async client for one Talos endpoint. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    endpoint: String,
    http: reqwest::Client,
    /// `Authorization: Bearer …` for admin routes; marked sensitive, so `Debug` never shows it.
    token: Option<HeaderValue>,
}

impl Client {
    /// A client for `endpoint`, e.g. `http://localhost:4420`. A missing scheme means `http://`.
    pub fn new(endpoint: impl AsRef<str>) -> Result<Self, ClientError> {
        Self::with_ca_certs(endpoint, &[])
    }

    /// Like [`Client::new`], also trusting the PEM certificates in `ca_pem` (one or more
    /// `CERTIFICATE` blocks, e.g. a private CA or a self-signed server certificate) besides the
    /// platform's roots. Empty = the platform's roots only.
    pub fn with_ca_certs(endpoint: impl AsRef<str>, ca_pem: &[u8]) -> Result<Self, ClientError> {
        let endpoint = endpoint.as_ref();
        let invalid = |message: String| ClientError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("talos-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Large batch imports take a while on the server; a stuck server should still not hang a script.
            .timeout(Duration::from_secs(300));
        if !ca_pem.is_empty() {
            let bad = |message: String| ClientError::InvalidCaCert { message };
            let roots = reqwest::Certificate::from_pem_bundle(ca_pem)
                .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
            if roots.is_empty() {
                return Err(bad("no PEM CERTIFICATE block found".into()));
            }
            builder = builder.tls_certs_merge(roots);
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("cannot build HTTP client: {e}")))?;
        Self::with_http_client(endpoint, http)
    }

    /// A client using a caller-configured `reqwest::Client` (proxies, TLS roots, timeouts).
    pub fn with_http_client(
        endpoint: impl AsRef<str>,
        http: reqwest::Client,
    ) -> Result<Self, ClientError> {
        let given = endpoint.as_ref().trim();
        let with_scheme = if given.contains("://") {
            given.to_owned()
        } else {
            format!("http://{given}")
        };
        let invalid = |message: String| ClientError::InvalidEndpoint {
            endpoint: given.to_owned(),
            message,
        };
        let base = Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "unsupported scheme {:?} (use http or https)",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("not an http(s) URL with a host".into()));
        }
        Ok(Self {
            endpoint: given.trim_end_matches('/').to_owned(),
            base,
            http,
            token: None,
        })
    }

    /// Sends `token` as `Authorization: Bearer <token>` on every admin request (`/v2alpha1/admin/*`),
    /// for servers with `serve.http.admin_auth.tokens`. An empty token sends nothing.
    pub fn with_token(mut self, token: impl AsRef<str>) -> Result<Self, ClientError> {
        let token = token.as_ref().trim();
        if token.is_empty() {
            self.token = None;
            return Ok(self);
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::InvalidEndpoint {
                endpoint: self.endpoint.clone(),
                message: "the admin token contains characters not allowed in a header".into(),
            }
        })?;
        value.set_sensitive(true);
        self.token = Some(value);
        Ok(self)
    }

    /// The endpoint as configured (used in error messages).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // Path segments are percent-encoded by `extend`, so a key id can never escape its segment.
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn admin(&self, segments: &[&str]) -> Url {
        let all: Vec<&str> = ADMIN.iter().chain(segments).copied().collect();
        self.url(&all)
    }

    /// Sends and returns status and JSON body; non-2xx becomes [`ClientError::Api`].
    async fn exchange(&self, req: RequestBuilder) -> Result<Exchanged, ClientError> {
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::unreachable(&self.endpoint, e))?;
        let status = resp.status().as_u16();
        let request_id = resp
            .headers()
            .get(talos_api::headers::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let rate_limit = talos_api::headers::RateLimitHeaders::from_headers(|name| {
            resp.headers().get(name).and_then(|v| v.to_str().ok())
        });
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::unreachable(&self.endpoint, e))?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_response(status, &bytes, request_id));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Exchanged {
                status,
                raw: Value::Null,
                rate_limit,
            });
        }
        let raw = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status,
            message: format!("body is not JSON: {e}"),
        })?;
        Ok(Exchanged {
            status,
            raw,
            rate_limit,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<Response<T>, ClientError> {
        let Exchanged {
            status,
            raw,
            rate_limit,
        } = self.exchange(req).await?;
        // An empty 2xx body decodes as `{}` so that every field takes its default.
        let src = if raw.is_null() {
            json!({})
        } else {
            raw.clone()
        };
        let body = serde_json::from_value(src).map_err(|e| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            status,
            message: e.to_string(),
        })?;
        Ok(Response {
            status,
            body,
            raw,
            rate_limit,
        })
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        // The admin token goes only to admin routes, never to the public ones.
        let token = self
            .token
            .as_ref()
            .filter(|_| url.path().contains("/v2alpha1/admin/"));
        let req = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match token {
            Some(t) => req.header(reqwest::header::AUTHORIZATION, t.clone()),
            None => req,
        }
    }

    fn post_json<B: Serialize + ?Sized>(&self, url: Url, body: &B) -> RequestBuilder {
        self.request(Method::POST, url).json(body)
    }

    // ------------------------------------------------------------------ issued keys

    /// Issues a key. The response's `secret` is shown once.
    pub async fn issue(
        &self,
        req: &IssueApiKeyRequest,
    ) -> Result<Response<IssueApiKeyResponse>, ClientError> {
        self.call(self.post_json(self.admin(&["issuedApiKeys"]), req))
            .await
    }

    /// Gets an issued key by id.
    pub async fn get_issued(&self, key_id: &str) -> Result<Response<ApiKey>, ClientError> {
        self.call(self.request(Method::GET, self.admin(&["issuedApiKeys", key_id])))
            .await
    }

    /// Lists one page of issued keys.
    pub async fn list_issued(
        &self,
        params: &ListParams,
    ) -> Result<Response<ListIssuedApiKeysResponse>, ClientError> {
        let url = with_list_params(self.admin(&["issuedApiKeys"]), params);
        self.call(self.request(Method::GET, url)).await
    }

    /// Updates an issued key. `mask` empty → the mask implied by the set fields.
    pub async fn update_issued(
        &self,
        key_id: &str,
        req: &UpdateApiKeyRequest,
        mask: &[&str],
    ) -> Result<Response<ApiKey>, ClientError> {
        let url = with_mask(self.admin(&["issuedApiKeys", key_id]), req, mask);
        self.call(self.request(Method::PATCH, url).json(req)).await
    }

    /// Rotates an issued key: a new key and secret, the old one revoked as superseded.
    pub async fn rotate(
        &self,
        key_id: &str,
        req: &RotateApiKeyRequest,
    ) -> Result<Response<RotateApiKeyResponse>, ClientError> {
        let seg = format!("{key_id}:rotate");
        self.call(self.post_json(self.admin(&["issuedApiKeys", &seg]), req))
            .await
    }

    /// Revokes an issued key through its per-kind route (upstream's body names the text `description`).
    pub async fn revoke_issued(
        &self,
        key_id: &str,
        req: &RevokeApiKeyRequest,
    ) -> Result<Response<()>, ClientError> {
        let seg = format!("{key_id}:revoke");
        self.call_unit(self.post_json(
            self.admin(&["issuedApiKeys", &seg]),
            &per_kind_revoke_body(req),
        ))
        .await
    }

    // ------------------------------------------------------------------ both kinds

    /// Revokes an issued or imported key through the unified route `apiKeys/{id}:revoke`.
    pub async fn revoke(
        &self,
        key_id: &str,
        req: &RevokeApiKeyRequest,
    ) -> Result<Response<()>, ClientError> {
        let seg = format!("{key_id}:revoke");
        self.call_unit(self.post_json(self.admin(&["apiKeys", &seg]), req))
            .await
    }

    /// Verifies any credential (issued, imported, JWT, macaroon). A well-formed request always answers 200;
    /// look at [`VerifyApiKeyResponse::active`].
    pub async fn verify(
        &self,
        credential: &str,
        opts: VerifyOptions,
    ) -> Result<Response<VerifyApiKeyResponse<'static>>, ClientError> {
        let body = opts.request(credential);
        let req = cache_headers(self.post_json(self.admin(&["apiKeys:verify"]), &body), opts);
        self.call(req).await
    }

    /// Verifies up to 100 credentials at once; results in request order.
    pub async fn batch_verify<S: AsRef<str>>(
        &self,
        credentials: &[S],
        opts: VerifyOptions,
    ) -> Result<Response<BatchVerifyApiKeysResponse<'static>>, ClientError> {
        let body = BatchVerifyApiKeysRequest {
            requests: Some(
                credentials
                    .iter()
                    .map(|c| opts.request(c.as_ref()))
                    .collect(),
            ),
        };
        let req = self.post_json(self.admin(&["apiKeys:batchVerify"]), &body);
        self.call(cache_headers(req, opts)).await
    }

    /// Derives a short-lived JWT or macaroon from a key.
    pub async fn derive(
        &self,
        req: &DeriveTokenRequest,
    ) -> Result<Response<DeriveTokenResponse>, ClientError> {
        self.call(self.post_json(self.admin(&["apiKeys:derive"]), req))
            .await
    }

    /// Revokes a key by proof of possession (public route); idempotent.
    pub async fn self_revoke(
        &self,
        req: &SelfRevokeApiKeyRequest,
    ) -> Result<Response<Value>, ClientError> {
        self.call(self.post_json(self.url(&["v2alpha1", "apiKeys:selfRevoke"]), req))
            .await
    }

    // ------------------------------------------------------------------ imported keys

    /// Imports an existing credential (only its HMAC is stored).
    pub async fn import(
        &self,
        req: &ImportApiKeyRequest,
    ) -> Result<Response<ImportApiKeyResponse>, ClientError> {
        self.call(self.post_json(self.admin(&["importedApiKeys"]), req))
            .await
    }

    /// Imports up to 1000 keys in one request, sent as `{"requests":[…]}` to `importedApiKeys:batchImport`.
    ///
    /// Items are generic so that callers can pass [`ImportApiKeyRequest`]s or JSON objects read from a file.
    /// When every item fails the server answers 4xx/5xx with the error envelope *and* the per-item results; that
    /// case is returned as `Ok` (check `failure_count`), since per-item outcomes are what a caller needs. A
    /// batch-level error without results (bad request, no HMAC secret, …) is an `Err`.
    pub async fn batch_import<T: Serialize>(
        &self,
        items: &[T],
    ) -> Result<Response<BatchImportResponse>, ClientError> {
        let req = self.post_json(
            self.admin(&["importedApiKeys:batchImport"]),
            &json!({ "requests": items }),
        );
        match self.call(req).await {
            Err(ClientError::Api {
                status, context, ..
            }) if context.body.get("results").is_some_and(Value::is_array) => {
                let body = context.body;
                let parsed =
                    serde_json::from_value(body.clone()).map_err(|e| ClientError::Decode {
                        endpoint: self.endpoint.clone(),
                        status,
                        message: e.to_string(),
                    })?;
                Ok(Response {
                    status,
                    body: parsed,
                    raw: body,
                    rate_limit: None,
                })
            }
            other => other,
        }
    }

    /// Gets an imported key by id (64 hex characters).
    pub async fn get_imported(&self, key_id: &str) -> Result<Response<ApiKey>, ClientError> {
        self.call(self.request(Method::GET, self.admin(&["importedApiKeys", key_id])))
            .await
    }

    /// Lists one page of imported keys.
    pub async fn list_imported(
        &self,
        params: &ListParams,
    ) -> Result<Response<ListImportedApiKeysResponse>, ClientError> {
        let url = with_list_params(self.admin(&["importedApiKeys"]), params);
        self.call(self.request(Method::GET, url)).await
    }

    /// Updates an imported key. `mask` empty → the mask implied by the set fields.
    pub async fn update_imported(
        &self,
        key_id: &str,
        req: &UpdateApiKeyRequest,
        mask: &[&str],
    ) -> Result<Response<ApiKey>, ClientError> {
        let url = with_mask(self.admin(&["importedApiKeys", key_id]), req, mask);
        self.call(self.request(Method::PATCH, url).json(req)).await
    }

    /// Revokes an imported key through its per-kind route.
    pub async fn revoke_imported(
        &self,
        key_id: &str,
        req: &RevokeApiKeyRequest,
    ) -> Result<Response<()>, ClientError> {
        let seg = format!("{key_id}:revoke");
        self.call_unit(self.post_json(
            self.admin(&["importedApiKeys", &seg]),
            &per_kind_revoke_body(req),
        ))
        .await
    }

    /// Deletes an imported key permanently (no audit trail; prefer revoke).
    pub async fn delete_imported(&self, key_id: &str) -> Result<Response<()>, ClientError> {
        self.call_unit(self.request(Method::DELETE, self.admin(&["importedApiKeys", key_id])))
            .await
    }

    // ------------------------------------------------------------------ misc

    /// Public keys that verify derived JWTs (`/v2alpha1/derivedKeys/jwks.json`).
    pub async fn jwks(&self) -> Result<Response<JwksResponse>, ClientError> {
        self.call(self.request(
            Method::GET,
            self.url(&["v2alpha1", "derivedKeys", "jwks.json"]),
        ))
        .await
    }

    /// Public keys at the standard location (`/.well-known/jwks.json`, plain RFC 7517 shape).
    pub async fn well_known_jwks(&self) -> Result<Response<JwksResponse>, ClientError> {
        self.call(self.request(Method::GET, self.url(&[".well-known", "jwks.json"])))
            .await
    }

    /// `GET /health/alive`.
    pub async fn health_alive(&self) -> Result<Response<HealthStatus>, ClientError> {
        self.call(self.request(Method::GET, self.url(&["health", "alive"])))
            .await
    }

    /// `GET /health/ready` (503 when the database or the HMAC secret is missing).
    pub async fn health_ready(&self) -> Result<Response<HealthStatus>, ClientError> {
        self.call(self.request(Method::GET, self.url(&["health", "ready"])))
            .await
    }

    // ------------------------------------------------------------------ metering

    /// Records a usage event and debits the actor's balance; a repeated `request_id` is not
    /// debited again (`accepted: false`).
    pub async fn ingest_usage(
        &self,
        req: &IngestUsageRequest,
    ) -> Result<Response<IngestUsageResponse>, ClientError> {
        self.call(self.post_json(self.admin(&["usage:ingest"]), req))
            .await
    }

    /// Sets an actor's balance quota in micro-units (0 = unlimited).
    pub async fn set_actor_quota(
        &self,
        actor_id: &str,
        quota_micros: i64,
    ) -> Result<Response<ActorBalance>, ClientError> {
        let body = SetQuotaRequest {
            actor_id: actor_id.to_owned(),
            quota_micros: Some(quota_micros),
        };
        self.call(self.post_json(self.admin(&["actorBalances:setQuota"]), &body))
            .await
    }

    /// Adds to an actor's remaining balance.
    pub async fn top_up_actor(
        &self,
        actor_id: &str,
        amount_micros: i64,
    ) -> Result<Response<ActorBalance>, ClientError> {
        let body = TopUpRequest {
            actor_id: actor_id.to_owned(),
            amount_micros: Some(amount_micros),
        };
        self.call(self.post_json(self.admin(&["actorBalances:topUp"]), &body))
            .await
    }

    /// An actor's balance (zeros when it has none).
    pub async fn get_actor_balance(
        &self,
        actor_id: &str,
    ) -> Result<Response<ActorBalance>, ClientError> {
        let url = self.admin(&["actorBalances", actor_id]);
        self.call(self.request(Method::GET, url)).await
    }

    // ------------------------------------------------------------------ self-service
    //
    // These routes are called through the authenticating proxy that Talos trusts
    // (`self_service.trusted_proxies`); the methods name the user in `X-User-Id`, the default
    // `self_service.user_id_header`, as such a proxy would.

    fn self_request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        user_id: &str,
    ) -> RequestBuilder {
        let all: Vec<&str> = ["v2alpha1", "self"]
            .iter()
            .chain(segments)
            .copied()
            .collect();
        let mut url = self.url(&all);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        self.request(method, url)
            .header(talos_api::headers::USER_ID, user_id)
    }

    /// Issues a key for `user_id`.
    pub async fn self_issue(
        &self,
        user_id: &str,
        req: &SelfIssueApiKeyRequest,
    ) -> Result<Response<IssueApiKeyResponse>, ClientError> {
        let r = self.self_request(Method::POST, &["issuedApiKeys"], &[], user_id);
        self.call(r.json(req)).await
    }

    /// One page of `user_id`'s issued keys.
    pub async fn self_list(
        &self,
        user_id: &str,
        page_size: Option<i64>,
        page_token: Option<&str>,
    ) -> Result<Response<ListIssuedApiKeysResponse>, ClientError> {
        let mut query = Vec::new();
        if let Some(n) = page_size {
            query.push(("page_size", n.to_string()));
        }
        if let Some(t) = page_token {
            query.push(("page_token", t.to_owned()));
        }
        let r = self.self_request(Method::GET, &["issuedApiKeys"], &query, user_id);
        self.call(r).await
    }

    /// Revokes one of `user_id`'s keys.
    pub async fn self_revoke_issued(
        &self,
        user_id: &str,
        key_id: &str,
        req: &RevokeApiKeyRequest,
    ) -> Result<Response<()>, ClientError> {
        let seg = format!("{key_id}:revoke");
        let r = self.self_request(Method::POST, &["issuedApiKeys", &seg], &[], user_id);
        self.call_unit(r.json(req)).await
    }

    /// `user_id`'s balance.
    pub async fn self_balance(&self, user_id: &str) -> Result<Response<ActorBalance>, ClientError> {
        self.call(self.self_request(Method::GET, &["actorBalance"], &[], user_id))
            .await
    }

    /// `user_id`'s usage records, newest first (`limit`: default 50, at most 1000).
    pub async fn self_usage_history(
        &self,
        user_id: &str,
        limit: Option<i64>,
    ) -> Result<Response<UsageHistoryResponse>, ClientError> {
        let query: Vec<(&str, String)> = limit
            .map(|n| ("limit", n.to_string()))
            .into_iter()
            .collect();
        self.call(self.self_request(Method::GET, &["usageHistory"], &query, user_id))
            .await
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<Response<VersionInfo>, ClientError> {
        self.call(self.request(Method::GET, self.url(&["version"])))
            .await
    }

    async fn call_unit(&self, req: RequestBuilder) -> Result<Response<()>, ClientError> {
        let Exchanged {
            status,
            raw,
            rate_limit,
        } = self.exchange(req).await?;
        Ok(Response {
            status,
            body: (),
            raw,
            rate_limit,
        })
    }
}

/// Upstream's per-kind routes name the free text `description`.
fn per_kind_revoke_body(req: &RevokeApiKeyRequest) -> RevokeApiKeyRequest {
    RevokeApiKeyRequest {
        reason: req.reason,
        reason_text: None,
        description: req.reason_text.clone().or_else(|| req.description.clone()),
    }
}

fn cache_headers(req: RequestBuilder, opts: VerifyOptions) -> RequestBuilder {
    if opts.no_cache {
        req.header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
    } else {
        req
    }
}

fn with_list_params(mut url: Url, p: &ListParams) -> Url {
    let pairs = p.to_pairs();
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    url
}

fn with_mask(mut url: Url, req: &UpdateApiKeyRequest, mask: &[&str]) -> Url {
    let paths: Vec<&str> = if mask.is_empty() {
        req.implied_mask()
    } else {
        mask.to_vec()
    };
    if !paths.is_empty() {
        url.query_pairs_mut()
            .append_pair("update_mask", &paths.join(","));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize() {
        let c = Client::new("localhost:4420/").unwrap();
        assert_eq!(c.endpoint(), "localhost:4420");
        assert_eq!(
            c.admin(&["issuedApiKeys", "a/b?c"]).as_str(),
            "http://localhost:4420/v2alpha1/admin/issuedApiKeys/a%2Fb%3Fc"
        );
        let c = Client::new("https://talos.example/prefix/").unwrap();
        assert_eq!(
            c.url(&["health", "alive"]).as_str(),
            "https://talos.example/prefix/health/alive"
        );
        assert!(Client::new("ftp://x").is_err());
        assert!(Client::new("http://").is_err());
    }

    #[test]
    fn list_and_mask_queries() {
        let c = Client::new("http://h").unwrap();
        let p = ListParams {
            page_size: Some(10),
            actor_id: Some("a b".into()),
            ..Default::default()
        };
        assert_eq!(
            with_list_params(c.admin(&["issuedApiKeys"]), &p).as_str(),
            "http://h/v2alpha1/admin/issuedApiKeys?page_size=10&actor_id=a+b"
        );
        assert_eq!(
            with_list_params(c.admin(&["x"]), &ListParams::default()).as_str(),
            "http://h/v2alpha1/admin/x"
        );
        let u = UpdateApiKeyRequest {
            name: Some("n".into()),
            metadata: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            with_mask(c.admin(&["k"]), &u, &[]).query(),
            Some("update_mask=name%2Cmetadata")
        );
        assert_eq!(
            with_mask(c.admin(&["k"]), &u, &["scopes"]).query(),
            Some("update_mask=scopes")
        );
    }

    #[test]
    fn the_admin_token_goes_only_to_admin_routes_and_never_to_debug() {
        let c = Client::new("http://h")
            .unwrap()
            .with_token("talos_admin_secret")
            .unwrap();
        assert!(!format!("{c:?}").contains("talos_admin_secret"));
        let auth = |url: Url| {
            c.request(Method::GET, url)
                .build()
                .unwrap()
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            auth(c.admin(&["issuedApiKeys"])).as_deref(),
            Some("Bearer talos_admin_secret")
        );
        assert_eq!(auth(c.url(&["v2alpha1", "apiKeys:selfRevoke"])), None);
        let c = c.with_token("").unwrap();
        assert_eq!(c.token, None);
        assert!(Client::new("http://h").unwrap().with_token("a\nb").is_err());
    }

    #[test]
    fn ca_certs_must_be_pem_certificates() {
        for junk in [
            &b"not a certificate"[..],
            b"-----BEGIN CERTIFICATE-----\n!!\n",
        ] {
            let e = Client::with_ca_certs("https://h", junk).unwrap_err();
            assert!(
                matches!(e, ClientError::InvalidCaCert { .. }),
                "{e:?} for {junk:?}"
            );
        }
        assert!(Client::with_ca_certs("https://h", b"").is_ok());
    }

    #[test]
    fn per_kind_revoke_uses_description() {
        let r = RevokeApiKeyRequest {
            reason: Some(RevocationReason::PrivilegeWithdrawn),
            reason_text: Some("left".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(per_kind_revoke_body(&r)).unwrap(),
            json!({"reason": "REVOCATION_REASON_PRIVILEGE_WITHDRAWN", "description": "left"})
        );
    }
}
