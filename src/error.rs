//! The one error type of the HTTP API, and the JSON envelope it becomes:
//! `{"status":"error","error":{"code":"snake_case","message":"...","fields":{...}}}`.
//!
//! Handlers return `Result<_, ApiError>`. actix-web's own extractor errors (bad JSON, bad
//! query, bad path, payload too large) are converted by the `*_config` functions below, and
//! anything else that would leave actix as plain text is rewritten by [`envelope_framework_errors`].

use std::collections::BTreeMap;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Conflict, Forbidden, Invalid, MessageReference, StoreError};

/// Declares [`ErrorCode`]: each variant with its wire spelling, written once.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// Every `error.code` the API answers with: stable snake_case strings that clients
        /// switch on (listed as an enum in the OpenAPI document).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(Self::$variant,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    /// A body, query or path value that parsed but is not acceptable; `fields` says which.
    ValidationFailed = "validation_failed",
    /// The body is not JSON at all.
    InvalidJson = "invalid_json",
    /// The body could not be read.
    InvalidBody = "invalid_body",
    /// The query string is malformed.
    InvalidQuery = "invalid_query",
    /// A path segment is malformed (e.g. not an id).
    InvalidPath = "invalid_path",
    /// The body is larger than the server accepts.
    PayloadTooLarge = "payload_too_large",
    /// The body is not `application/json`.
    UnsupportedMediaType = "unsupported_media_type",
    /// No route has this path.
    RouteNotFound = "route_not_found",
    /// The route exists, not with this method.
    MethodNotAllowed = "method_not_allowed",
    /// Any other malformed request.
    BadRequest = "bad_request",
    /// The thing does not exist, or the caller may not see it.
    NotFound = "not_found",
    /// The caller may see the thing, not do this to it.
    Forbidden = "forbidden",
    /// A chat request is pending: its recipient must accept before sending, and its requester
    /// has sent the `CHAT_REQUEST_MAX_MESSAGES` it allows.
    ChatRequestPending = "chat_request_pending",
    /// The recipient declined the caller's chat request: nothing the caller sends reaches them
    /// (within `CHAT_REQUEST_COOLDOWN_DAYS`, not even a new request).
    ChatRequestDeclined = "chat_request_declined",
    /// Too many requests: see `Retry-After`.
    RateLimited = "rate_limited",
    /// A fault of the server; its cause is logged, never sent.
    InternalError = "internal_error",
    /// The database does not answer (`/ready`).
    DatabaseUnavailable = "database_unavailable",
    /// No `Authorization: Bearer` header.
    MissingToken = "missing_token",
    /// The access token is not one of ours.
    InvalidToken = "invalid_token",
    /// The access token has expired: refresh it.
    TokenExpired = "token_expired",
    /// The token's session was logged out or revoked.
    SessionEnded = "session_ended",
    /// Wrong email or password.
    InvalidCredentials = "invalid_credentials",
    /// The refresh token is unknown or expired.
    InvalidRefreshToken = "invalid_refresh_token",
    /// No refresh token in the body or the cookie.
    MissingRefreshToken = "missing_refresh_token",
    /// A replaced refresh token was presented again: the session is revoked.
    RefreshTokenReused = "refresh_token_reused",
    /// The stream ticket is unknown, expired or used.
    InvalidTicket = "invalid_ticket",
    /// The email is registered already.
    EmailTaken = "email_taken",
    /// The phone number is another user's.
    PhoneTaken = "phone_taken",
    /// The pair has a conversation already.
    ChatExists = "chat_exists",
    /// The chat request was accepted or declined already.
    ChatRequestAnswered = "chat_request_answered",
    /// The message was deleted for everyone.
    MessageDeleted = "message_deleted",
    /// An upload passed `FILE_MAX_BYTES`: it was stopped there and nothing was kept.
    FileTooLarge = "file_too_large",
    /// An upload's bytes are of a type `FILE_ALLOWED_TYPES` does not list.
    FileTypeNotAllowed = "file_type_not_allowed",
    /// The caller's files would take more than `FILE_QUOTA_BYTES`.
    QuotaExceeded = "quota_exceeded",
    /// A `Range` outside the file.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// A picture with more pixels than `IMAGE_MAX_PIXELS`, or needing more memory to decode
    /// (a decompression bomb): refused, nothing kept.
    ImageTooLarge = "image_too_large",
    /// A two-step upload whose bytes have not (all) arrived at its `uploadUrl` yet.
    UploadIncomplete = "upload_incomplete",
    /// Bytes sent for a two-step upload that is complete already.
    UploadComplete = "upload_complete",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    fields: Option<BTreeMap<String, String>>,
    retry_after_seconds: Option<u64>,
    /// For a 429: the budget that was used up, as `RateLimit-Policy` tells it.
    policy: Option<Box<RatePolicy>>,
    /// The cause of an internal error: logged, never sent.
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug)]
struct RatePolicy {
    name: &'static str,
    quota: u32,
    window_seconds: u64,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
            retry_after_seconds: None,
            policy: None,
            cause: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    /// 404 for `what` ("conversation", "user", ...). Also what a non-participant gets, so the
    /// answer never tells whether a conversation exists.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with one failing field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        Self::invalid_fields([(field.to_string(), problem.into())])
    }

    /// 422 with every failing field (see [`fields_message`] for its message).
    pub fn invalid_fields(fields: impl IntoIterator<Item = (String, String)>) -> Self {
        let fields: BTreeMap<String, String> = fields.into_iter().collect();
        let message = fields_message(&fields);
        Self {
            fields: Some(fields),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ValidationFailed, message)
        }
    }

    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        Self {
            retry_after_seconds: Some(retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many requests, slow down",
            )
        }
    }

    /// The same error, told in other words.
    pub fn with_message(self, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..self
        }
    }

    /// Names the budget a 429 used up: `quota` requests per `window_seconds`, sent as the
    /// IETF `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers).
    pub fn with_policy(self, name: &'static str, quota: u32, window_seconds: u64) -> Self {
        Self {
            policy: Some(Box::new(RatePolicy {
                name,
                quota,
                window_seconds,
            })),
            ..self
        }
    }

    /// A real fault. The cause is logged when the response is built; the client sees only
    /// `internal_error`.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "internal server error",
            )
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// The HTTP layer's reading of a store error: the API's field names and words for each
/// broken rule live here, not in the store.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(conflict) => {
                let (code, message) = match conflict {
                    Conflict::EmailTaken => (ErrorCode::EmailTaken, "this email is already registered"),
                    Conflict::PhoneTaken => (ErrorCode::PhoneTaken, "this phone number is another user's"),
                    Conflict::ChatExists => (ErrorCode::ChatExists, "you already have a conversation with this user"),
                    Conflict::ChatRequestAnswered => {
                        (ErrorCode::ChatRequestAnswered, "this chat request was answered already")
                    }
                    Conflict::MessageDeleted => (ErrorCode::MessageDeleted, "a deleted message cannot be edited"),
                };
                ApiError::conflict(code, message)
            }
            StoreError::Invalid(invalid) => {
                let list = |ids: &[uuid::Uuid]| ids.iter().map(uuid::Uuid::to_string).collect::<Vec<_>>().join(", ");
                let (field, problem) = match &invalid {
                    Invalid::UnknownUsers(ids) => ("participants", format!("unknown user id(s): {}", list(ids))),
                    Invalid::UnknownFiles(ids) => ("files", format!("not files you uploaded: {}", list(ids))),
                    Invalid::OwnerRemoved => (
                        "participants",
                        "the owner cannot be removed (leave with DELETE instead)".into(),
                    ),
                    Invalid::NotAGroup => (
                        "conversation",
                        "a direct conversation has exactly two participants and no name".into(),
                    ),
                    Invalid::ForeignMessages(ids) => {
                        ("ids", format!("not messages of this conversation: {}", list(ids)))
                    }
                    Invalid::ForeignMessage(reference) => (
                        match reference {
                            MessageReference::ReplyTo => "replyTo",
                            MessageReference::ReadUpTo => "upTo",
                            MessageReference::Before => "before",
                            MessageReference::After => "after",
                        },
                        "is not a message of this conversation".into(),
                    ),
                    Invalid::GroupTooLarge(max) => (
                        "participants",
                        format!("a group has at most {max} members, its owner included"),
                    ),
                    Invalid::UnusableAvatar => (
                        "avatar",
                        "must be the id of an image you uploaded (with its thumbnail)".into(),
                    ),
                    Invalid::TooManyBlocks(max) => ("ids", format!("at most {max} users can be blocked")),
                    Invalid::TooManySubscriptions(max) => {
                        ("ids", format!("a stream follows the presence of at most {max} users"))
                    }
                    Invalid::DatabaseUrl => (
                        "DATABASE_URL",
                        "must start with postgres://, postgresql:// or sqlite:".into(),
                    ),
                };
                ApiError::invalid_field(field, problem)
            }
            StoreError::Forbidden(forbidden) => {
                let (code, message) = match forbidden {
                    Forbidden::NotTheSender => (ErrorCode::Forbidden, "only the sender may edit a message"),
                    Forbidden::NotTheSenderOrOwner => (
                        ErrorCode::Forbidden,
                        "only the sender (or the group's owner) may delete a message for everyone",
                    ),
                    Forbidden::NotTheRecipient => {
                        (ErrorCode::Forbidden, "only the recipient may answer a chat request")
                    }
                    Forbidden::ChatRequestPending => (
                        ErrorCode::ChatRequestPending,
                        "this chat request is pending: the recipient accepts first, and the requester may send only a few messages",
                    ),
                    Forbidden::ChatRequestDeclined => {
                        (ErrorCode::ChatRequestDeclined, "this user declined your chat request")
                    }
                    Forbidden::OwnerOnlyMembers => {
                        (ErrorCode::Forbidden, "only the group's owner may add or remove members")
                    }
                    Forbidden::OwnerOnlyRenamePolicy => (
                        ErrorCode::Forbidden,
                        "only the group's owner may choose who renames the group",
                    ),
                    Forbidden::OwnerOnlyRename => (
                        ErrorCode::Forbidden,
                        "only the group's owner may rename or describe this group",
                    ),
                    Forbidden::CredentialsChanged => (
                        ErrorCode::InvalidCredentials,
                        "the password changed meanwhile; confirm the current one again",
                    ),
                };
                ApiError::new(StatusCode::FORBIDDEN, code, message)
            }
            StoreError::Database(cause) => ApiError::internal(cause),
        }
    }
}

/// The error envelope, as documented in the OpenAPI spec.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `"error"`.
    #[schema(example = "error")]
    pub status: &'static str,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable snake_case code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    #[schema(example = "email: not a valid email address")]
    pub message: String,
    /// For `validation_failed`: each failing field and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => {
                    tracing::error!(code = self.code.as_str(), error = %cause, error_debug = ?cause, "request failed")
                }
                None => tracing::error!(code = self.code.as_str(), message = %self.message, "request failed"),
            }
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after_seconds {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            if let Some(policy) = &self.policy {
                let RatePolicy {
                    name,
                    quota,
                    window_seconds,
                } = policy.as_ref();
                response.insert_header(("RateLimit-Policy", format!("\"{name}\";q={quota};w={window_seconds}")));
                response.insert_header(("RateLimit", format!("\"{name}\";r=0;t={seconds}")));
            }
        }
        response.json(ErrorEnvelope {
            status: "error",
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                fields: self.fields.clone(),
            },
        })
    }
}

/// JSON bodies: 400 for what is not JSON, 422 for JSON of the wrong shape, 413 and 415.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _req: &HttpRequest| json_error(error).into())
}

fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(error) | JsonPayloadError::Serialize(error) => deserialize_error(&error),
        other => ApiError::bad_request(ErrorCode::InvalidBody, other.to_string()),
    }
}

/// Malformed JSON is a 400; well-formed JSON with a missing field, a wrong type or a bad
/// value is a 422 naming the problem as serde saw it.
pub fn deserialize_error(error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            error.to_string(),
        ),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(ErrorCode::InvalidJson, format!("body is not valid JSON: {error}"))
        }
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let message = match error {
            QueryPayloadError::Deserialize(error) => error.to_string(),
            other => other.to_string(),
        };
        ApiError::bad_request(ErrorCode::InvalidQuery, format!("malformed query string: {message}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _req| {
        let message = match error {
            PathError::Deserialize(error) => error.to_string(),
            other => other.to_string(),
        };
        ApiError::bad_request(ErrorCode::InvalidPath, format!("malformed path parameter: {message}")).into()
    })
}

/// Rewrites any error response that is not already our JSON envelope (actix's plain-text
/// 404/405/413, a panic turned 500, ...) into the envelope, keeping its status.
pub fn envelope_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let status = response.status();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::new(status, ErrorCode::RouteNotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, ErrorCode::MethodNotAllowed, "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, ErrorCode::PayloadTooLarge, "body is too large"),
        status if status.is_server_error() => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "internal server error",
        ),
        status => ApiError::new(
            status,
            ErrorCode::BadRequest,
            status.canonical_reason().unwrap_or("bad request").to_string(),
        ),
    };
    let (request, _) = response.into_parts();
    let replaced: HttpResponse<BoxBody> = error.error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, replaced).map_into_right_body(),
    ))
}

/// The message of a 422 that lists `fields`: `field: problem; field: problem`.
pub fn fields_message(fields: &BTreeMap<String, String>) -> String {
    fields
        .iter()
        .map(|(field, problem)| format!("{field}: {problem}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_is_written_on_the_wire_as_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
        }
    }
}
