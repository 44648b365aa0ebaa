//! The success envelope: `{"status":"success","data":{...}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Success<T> {
    /// Always `"success"`.
    #[schema(example = "success")]
    pub status: &'static str,
    pub data: T,
}

pub fn respond<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(Success {
        status: "success",
        data,
    })
}

pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    respond(StatusCode::OK, data)
}

pub fn created<T: Serialize>(data: T) -> HttpResponse {
    respond(StatusCode::CREATED, data)
}
