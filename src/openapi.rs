//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations (listed
//! once, with the route table, in `routes::route_table!`) and the request and response types. Served at `/api-docs/openapi.json` (Swagger UI at
//! `/swagger-ui/`) and committed as `openapi/openapi.json`; regenerate that file with
//! `cargo run -- openapi > openapi/openapi.json` (a test fails when it is stale).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorEnvelope};
use crate::realtime::payloads;
use crate::routes::RouteDoc;
use crate::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-api",
        description = "A Chatify-compatible chat backend. Every answer is an envelope: \
            `{\"status\":\"success\",\"data\":...}` or `{\"status\":\"error\",\"error\":{\"code\",\"message\"}}`. \
            Authenticate with `Authorization: Bearer <token>` from `/api/v1/auth/login`."
    ),
    components(schemas(
        ErrorEnvelope,
        ErrorBody,
        views::UserView,
        views::MessageView,
        views::ConversationView,
        payloads::TypingData,
        payloads::PresenceData,
        payloads::ResetData,
        payloads::ReadyData,
        payloads::BlocksChangedData,
        payloads::ContactData,
        payloads::ContactDeletedData,
        payloads::StarredData,
        payloads::RemovedData,
        payloads::FlagsChangedData,
        payloads::GroupChangedData,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts, sessions and tokens"),
        (name = "users", description = "Profiles and user search"),
        (name = "contacts", description = "The caller's address book, matched against registered users"),
        (name = "conversations", description = "Direct and group conversations"),
        (name = "messages", description = "Sending and reading messages"),
        (name = "chat requests", description = "Direct conversations that wait for the recipient to accept"),
        (name = "events", description = "Real-time events: the SSE stream and its JSON twin"),
        (name = "push", description = "Push notifications to devices and browsers without an open stream"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole document: [`ApiDoc`]'s description and schemas, with the paths of every route
/// the route table serves ([`RouteDoc`], declared with it).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(RouteDoc::openapi());
    document
}

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut json = document().to_pretty_json().expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
