//! tower: [`Require`] as a `Layer` for axum (`Router::route_layer`), tonic
//! (`Server::builder().layer`) and any tower stack. A request that passes carries its
//! [`VerifiedKey`] as a request extension; a refused one is answered here with the gateway's
//! status, headers and JSON body — or, for a gRPC request (`content-type: application/grpc…`),
//! as a trailers-only gRPC status, which gRPC clients read (401 `UNAUTHENTICATED`, 403
//! `PERMISSION_DENIED`, 429 `RESOURCE_EXHAUSTED`…), with the same headers.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use talos_api::gateway::header_value;
use talos_api::headers::API_KEY;

use crate::guard::{ClientIp, Decision, Denial, Require};

/// The body of a guarded service's response: the inner service's, or the refusal's.
pub type GuardBody<B> = Either<B, Full<Bytes>>;

impl<S> tower_layer::Layer<S> for Require {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> RequireService<S> {
        RequireService {
            inner,
            require: self.clone(),
        }
    }
}

/// The service [`Require`] wraps around another.
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    inner: S,
    require: Require,
}

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for RequireService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
{
    type Response = Response<GuardBody<ResB>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // The service that was polled ready goes into the future; a fresh clone stays (tower's
        // documented pattern for services called from a boxed future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let require = self.require.clone();
        // Read before the future: the request body need not be `Sync`, so no borrow of the
        // request may live across the verification's await.
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (authorization, api_key) = (header(AUTHORIZATION.as_str()), header(API_KEY));
        let ip = req.extensions().get::<ClientIp>().map(|c| c.0);
        Box::pin(async move {
            let decision = require
                .check(authorization.as_deref(), api_key.as_deref(), ip)
                .await;
            match decision {
                Decision::Allowed(key) => {
                    let limit = key.rate_limit;
                    req.extensions_mut().insert(key);
                    let mut res = inner.call(req).await?;
                    for (name, value) in limit.map(|l| l.pairs()).unwrap_or_default() {
                        if let (Ok(n), Ok(v)) =
                            (HeaderName::try_from(name), HeaderValue::try_from(value))
                        {
                            res.headers_mut().insert(n, v);
                        }
                    }
                    Ok(res.map(Either::Left))
                }
                Decision::Denied(d) => {
                    let grpc = req
                        .headers()
                        .get(CONTENT_TYPE)
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                    Ok(response(d, grpc).map(Either::Right))
                }
            }
        })
    }
}

/// gRPC's status code for a gateway status (the inverse of gRPC's HTTP-to-status mapping).
fn grpc_code(status: u16) -> u16 {
    match status {
        401 => 16, // UNAUTHENTICATED
        403 => 7,  // PERMISSION_DENIED
        402 => 9,  // FAILED_PRECONDITION
        429 => 8,  // RESOURCE_EXHAUSTED
        _ => 13,   // INTERNAL
    }
}

fn response(d: Denial, grpc: bool) -> Response<Full<Bytes>> {
    let (status, body) = if grpc {
        (StatusCode::OK, Bytes::new())
    } else {
        (
            StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Bytes::from(d.body),
        )
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    for (name, value) in d.headers {
        // The gateway's values are header-safe already (`gateway::header_value`).
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(n, v);
        }
    }
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(grpc_code(d.status)));
        if let Ok(v) = HeaderValue::try_from(header_value(&d.message, b"")) {
            headers.insert("grpc-message", v);
        }
    } else {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    resp
}
