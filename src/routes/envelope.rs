//! The success envelope: `{"status":"success","data":{...}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
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

/// As [`respond`], with every file link in `data` signed for its reader by `sign` (see
/// `views::sign_file_links`): for answers that show messages.
pub fn respond_signed<T: Serialize>(
    status: StatusCode,
    data: T,
    sign: &dyn Fn(uuid::Uuid, &str) -> String,
) -> HttpResponse {
    match serde_json::to_value(&data) {
        Ok(mut value) => {
            crate::views::sign_file_links(&mut value, sign);
            respond(status, value)
        }
        Err(error) => crate::error::ApiError::internal(error).error_response(),
    }
}

/// [`ok`] with file links signed (see [`respond_signed`]).
pub fn ok_signed<T: Serialize>(data: T, sign: &dyn Fn(uuid::Uuid, &str) -> String) -> HttpResponse {
    respond_signed(StatusCode::OK, data, sign)
}

/// [`created`] with file links signed (see [`respond_signed`]).
pub fn created_signed<T: Serialize>(data: T, sign: &dyn Fn(uuid::Uuid, &str) -> String) -> HttpResponse {
    respond_signed(StatusCode::CREATED, data, sign)
}
