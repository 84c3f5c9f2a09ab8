//! actix-web: [`Require`] as a middleware (`Transform`) that verifies each request before the
//! wrapped service sees it, and [`VerifiedKey`] as an extractor. The extractor takes the
//! identity the middleware stored; on a route without the middleware it verifies the request
//! itself with the [`Guard`] in the app data (no scope required), and refuses with the same
//! answer otherwise.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;
use talos_api::headers::API_KEY;

use crate::guard::{Decision, Denial, Guard, Require, VerifiedKey, internal_denial};

impl<S, B> Transform<S, ServiceRequest> for Require
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireMiddleware {
            service: Rc::new(service),
            require: self.clone(),
        }))
    }
}

/// The service [`Require`] wraps around a route.
pub struct RequireMiddleware<S> {
    service: Rc<S>,
    require: Require,
}

impl<S, B> Service<ServiceRequest> for RequireMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let require = self.require.clone();
        Box::pin(async move {
            match check(&require, req.request()).await {
                Decision::Allowed(key) => {
                    let limit = key.rate_limit;
                    req.extensions_mut().insert(key);
                    let mut res = service.call(req).await?;
                    for (name, value) in limit.map(|l| l.pairs()).unwrap_or_default() {
                        if let (Ok(n), Ok(v)) =
                            (HeaderName::try_from(name), HeaderValue::try_from(value))
                        {
                            res.headers_mut().insert(n, v);
                        }
                    }
                    Ok(res.map_into_left_body())
                }
                Decision::Denied(d) => Ok(req.into_response(response(&d)).map_into_right_body()),
            }
        })
    }
}

async fn check(require: &Require, req: &HttpRequest) -> Decision {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    // The connection's peer: a forwarded-for header is the client's to invent.
    let ip = req.peer_addr().map(|a| a.ip());
    require
        .check(header(AUTHORIZATION.as_str()), header(API_KEY), ip)
        .await
}

fn response(d: &Denial) -> HttpResponse {
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    for h in &d.headers {
        resp.insert_header(h.clone());
    }
    resp.content_type("application/json").body(d.body.clone())
}

/// The extractor's refusal: the gateway's answer as an actix-web error.
#[derive(Debug)]
pub struct Denied(pub Denial);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status, self.0.message)
    }
}

impl ResponseError for Denied {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        response(&self.0)
    }
}

impl FromRequest for VerifiedKey {
    type Error = Denied;
    type Future = LocalBoxFuture<'static, Result<Self, Denied>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(key) = req.extensions().get::<VerifiedKey>() {
            let key = key.clone();
            return Box::pin(async move { Ok(key) });
        }
        let req = req.clone();
        Box::pin(async move {
            let guard = req
                .app_data::<Guard>()
                .or_else(|| req.app_data::<actix_web::web::Data<Guard>>().map(|d| &***d));
            let Some(guard) = guard else {
                // A programming error of the service, not the client's: refuse, loudly.
                return Err(Denied(internal_denial(
                    "talos-guard: no Require middleware on this route and no Guard in the app data",
                )));
            };
            match check(&guard.any(), &req).await {
                Decision::Allowed(key) => Ok(key),
                Decision::Denied(d) => Err(Denied(d)),
            }
        })
    }
}
