//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types. Served at `/api-docs/openapi.json` (Swagger UI at
//! `/swagger-ui/`) and committed as `openapi/openapi.json`; regenerate that file with
//! `cargo run -- openapi > openapi/openapi.json` (a test fails when it is stale).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorEnvelope};
use crate::realtime::payloads;
use crate::routes::{auth, chat_requests, conversations, health, messages, stream, users};
use crate::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-api",
        description = "A Chatify-compatible chat backend. Every answer is an envelope: \
            `{\"status\":\"success\",\"data\":...}` or `{\"status\":\"error\",\"error\":{\"code\",\"message\"}}`. \
            Authenticate with `Authorization: Bearer <token>` from `/api/v1/auth/login`."
    ),
    paths(
        health::health,
        health::ready,
        auth::register,
        auth::login,
        auth::refresh_token,
        auth::logout,
        users::get_me,
        users::last_activity,
        users::search_users,
        users::get_user,
        conversations::create_conversation,
        conversations::list_conversations,
        conversations::get_conversation,
        conversations::update_conversation,
        conversations::leave_conversation,
        conversations::send_typing,
        conversations::toggle_pin,
        conversations::toggle_archive,
        conversations::mark_read,
        conversations::list_participants,
        conversations::search_conversations,
        messages::send_message,
        messages::list_messages,
        messages::edit_message,
        messages::toggle_star,
        messages::list_starred,
        messages::totals,
        messages::delete_message,
        messages::delete_messages,
        messages::search_all,
        messages::search_conversation,
        chat_requests::create_chat_request,
        chat_requests::list_chat_requests,
        chat_requests::accept_chat_request,
        chat_requests::decline_chat_request,
        stream::create_ticket,
        stream::open_stream,
        stream::list_events,
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
        payloads::StarredData,
        payloads::RemovedData,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts, sessions and tokens"),
        (name = "users", description = "Profiles and user search"),
        (name = "conversations", description = "Direct and group conversations"),
        (name = "messages", description = "Sending and reading messages"),
        (name = "chat requests", description = "Direct conversations that wait for the recipient to accept"),
        (name = "events", description = "Real-time events: the SSE stream and its JSON twin"),
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

/// The document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
