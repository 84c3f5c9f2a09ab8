//! HTTP helpers of a spawned [`TestApp`]: JSON in, status and JSON out, the admin token attached.
//! What several suites send the same way (issue a key, ask whether a credential verifies) lives
//! here once.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::TestApp;

const ISSUE: &str = "/v2alpha1/admin/issuedApiKeys";
const VERIFY: &str = "/v2alpha1/admin/apiKeys:verify";

impl TestApp {
    /// `method path` with an optional JSON body and the admin token, if any: the status, the
    /// headers and the JSON body (`Null` when it is not JSON).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        if let Some(token) = &self.admin_token {
            req = req.bearer_auth(token);
        }
        let r = req.send().await.expect("the server answers");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// [`send`](Self::send) without the headers.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, _, body) = self.send(method, path, body).await;
        (status, body)
    }

    /// `POST path` with a JSON body: the status and the JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Issues a key (`name` "n", `actor_id` "a", `ttl` 1h, and the fields of `extra`); asserts
    /// 201 and returns the key id and the secret.
    pub async fn issue_with(&self, extra: Value) -> (String, String) {
        let mut body = json!({"name": "n", "actor_id": "a", "ttl": "1h"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (s, j) = self.post(ISSUE, body).await;
        assert_eq!(s, 201, "{j}");
        let field = |v: &Value| v.as_str().expect("a string field").to_string();
        (field(&j["issued_api_key"]["key_id"]), field(&j["secret"]))
    }

    /// Issues a key as [`issue_with`](Self::issue_with) does; returns its secret.
    pub async fn issue(&self) -> String {
        self.issue_with(json!({})).await.1
    }

    /// Whether `credential` verifies (`is_valid` true) on the admin verify route.
    pub async fn is_valid(&self, credential: &str) -> bool {
        let (_, j) = self.post(VERIFY, json!({"credential": credential})).await;
        j["is_valid"] == json!(true)
    }
}
