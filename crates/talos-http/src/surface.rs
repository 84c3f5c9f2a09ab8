//! The one middleware in front of every route: what each request goes through before and after
//! its handler, in this order (outermost first):
//!
//! 1. load shedding and the request deadline (`limits`): 503 `OVERLOADED` or
//!    `DEADLINE_EXCEEDED`;
//! 2. the request context (`middleware`): request id, security headers, span, log line,
//!    metrics, and 499 when the client goes away;
//! 3. the host and browser-origin guard (`guard`): 421 or 403 before routing;
//! 4. CORS (`cors`): preflights answered, grants added to responses;
//! 5. the request-body deadline (`limits`): 408, and the connection closed.
//!
//! Why one hand-written `Transform` rather than a `from_fn` layer per step: each `from_fn` layer
//! boxes its future and calls the next layer through a boxed service, and each step looked up
//! the application state again. Here a request costs one lookup and at most three boxed futures
//! (the call, and the two futures that may be handed to the background: past the deadline, or
//! once the client has gone).

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::web::Data;
use actix_web::{Error, ResponseError};
use futures_util::future::LocalBoxFuture;

use crate::AppState;
use crate::cors::Cors;
use crate::limits::{self, Limits};
use crate::middleware::RequestContext;

/// The middleware: `App::new().wrap(Surface)`.
pub struct Surface;

impl<S, B> Transform<S, ServiceRequest> for Surface
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = SurfaceService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SurfaceService {
            service: Rc::new(service),
        }))
    }
}

/// [`Surface`] around the application's service.
pub struct SurfaceService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for SurfaceService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Box::pin(surface(self.service.clone(), req))
    }
}

async fn surface<S, B>(
    service: Rc<S>,
    req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    let state = req.app_data::<Data<AppState>>().cloned();
    let limits = state.as_ref().map_or_else(Limits::default, |s| s.limits);
    // Shed answers skip the rest: no request id, no log line (the shed counter counts them).
    let admitted = match limits::admit(&req, &limits) {
        Ok(admitted) => admitted,
        Err(why) => {
            return Ok(req
                .into_response(limits::overloaded(why))
                .map_into_right_body());
        }
    };
    let context = RequestContext::begin(&req, state.as_ref().map(|s| s.get_ref()));
    let handled = async move {
        // In flight until the answer is produced, in the background too.
        let _admitted = admitted;
        context.run(guarded(service, req, state, limits)).await
    };
    limits::within_deadline(limits.request_timeout, handled).await
}

/// Steps 3 to 5 around the application's service (see the module docs).
async fn guarded<S, B>(
    service: Rc<S>,
    mut req: ServiceRequest,
    state: Option<Data<AppState>>,
    limits: Limits,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    if let Some(refusal) = state.as_ref().and_then(|s| crate::guard::refusal(&req, s)) {
        return Ok(req
            .into_response(refusal.error_response())
            .map_into_right_body());
    }
    let cors = Cors::check(&req, state.as_ref().map(|s| s.get_ref()));
    if let Cors::Preflight(res) = cors {
        return Ok(req.into_response(res).map_into_right_body());
    }
    drop(state);
    limits::bound_body(&mut req, limits.client_timeout);
    let mut res = service.call(req).await?;
    cors.apply(res.headers_mut());
    limits::close_after_body_timeout(&mut res);
    Ok(res.map_into_left_body())
}
