//! One free `async fn` per endpoint.

pub mod gateway;
pub mod imported;
pub mod issued;
pub mod metering;
pub mod misc;
pub mod self_service;
pub mod verify;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::AppState;

pub type State = web::Data<AppState>;

pub fn created(location: String, body: &impl Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}
