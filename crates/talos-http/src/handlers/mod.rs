//! One free `async fn` per endpoint.

pub mod imported;
pub mod issued;
pub mod misc;
pub mod verify;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::Value;

use crate::AppState;

pub type State = web::Data<AppState>;

pub fn created(location: String, body: Value) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}
