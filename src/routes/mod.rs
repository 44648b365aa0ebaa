//! The HTTP layer: every route of the API, in one table ([`configure`]), and the helpers the
//! handlers share. Handlers extract and validate, call the store or a service, and shape the
//! answer; they hold no SQL.

pub mod auth;
pub mod chat_requests;
pub mod conversations;
pub mod envelope;
pub mod extract;
pub mod health;
pub mod messages;
pub mod stream;
pub mod users;

use actix_web::web;

use crate::error::ApiError;

/// The route table. Within a scope, literal paths come before `{id}` paths that would
/// otherwise capture them (`/user/getme` before `/user/{id}`).
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(health::health).service(health::ready).service(
        web::scope("/api/v1")
            .service(
                web::scope("/auth")
                    .service(auth::register)
                    .service(auth::login)
                    .service(auth::refresh_token)
                    .service(auth::logout),
            )
            .service(
                web::scope("/user")
                    .service(users::get_me)
                    .service(users::last_activity)
                    .service(users::search_users)
                    .service(users::get_user),
            )
            .service(
                web::scope("/conversation")
                    .service(conversations::create_conversation)
                    .service(conversations::list_conversations)
                    .service(conversations::list_participants)
                    .service(conversations::search_conversations)
                    .service(conversations::get_conversation)
                    .service(conversations::update_conversation)
                    .service(conversations::leave_conversation)
                    .service(conversations::toggle_pin)
                    .service(conversations::toggle_archive)
                    .service(conversations::mark_read)
                    .service(conversations::send_typing),
            )
            .service(
                web::scope("/message")
                    .service(messages::send_message)
                    .service(messages::delete_messages)
                    .service(messages::list_starred)
                    .service(messages::totals)
                    .service(messages::search_all)
                    .service(messages::search_conversation)
                    .service(messages::list_messages)
                    .service(messages::edit_message)
                    .service(messages::toggle_star)
                    .service(messages::delete_message),
            )
            .service(
                web::scope("/chat-request")
                    .service(chat_requests::create_chat_request)
                    .service(chat_requests::list_chat_requests)
                    .service(chat_requests::accept_chat_request)
                    .service(chat_requests::decline_chat_request),
            )
            .service(
                web::scope("/events")
                    .service(stream::create_ticket)
                    .service(stream::open_stream)
                    .service(stream::list_events),
            ),
    );
}

/// Names a field's validation result, for [`collect_fields`].
pub(crate) fn field<T>(name: &'static str, result: Result<T, String>) -> Result<T, (String, String)> {
    result.map_err(|problem| (name.to_string(), problem))
}

/// All fields' values, or one 422 that lists every failing field (not just the first).
pub(crate) fn collect_fields<T: CollectFields>(fields: T) -> Result<T::Values, ApiError> {
    fields.collect()
}

pub(crate) trait CollectFields {
    type Values;
    fn collect(self) -> Result<Self::Values, ApiError>;
}

macro_rules! collect_fields_for_tuple {
    ($($value:ident),+) => {
        impl<$($value),+> CollectFields for ($(Result<$value, (String, String)>,)+) {
            type Values = ($($value,)+);

            #[allow(non_snake_case)]
            fn collect(self) -> Result<Self::Values, ApiError> {
                let ($($value,)+) = self;
                match ($($value,)+) {
                    ($(Ok($value),)+) => Ok(($($value,)+)),
                    ($($value,)+) => {
                        let mut failures = Vec::new();
                        $(if let Err(failure) = $value { failures.push(failure); })+
                        Err(ApiError::invalid_fields(failures))
                    }
                }
            }
        }
    };
}
collect_fields_for_tuple!(A, B);
collect_fields_for_tuple!(A, B, C);

/// Cuts a page fetched with `limit + 1` rows down to `limit`, and returns the cursor of its
/// last item when there was more (`None` on the last page).
pub(crate) fn next_page<T>(items: &mut Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    let limit = limit as usize;
    if items.len() <= limit {
        return None;
    }
    items.truncate(limit);
    items.last().map(cursor_of)
}

/// A comma-separated list of ids from a query string (`ids=a,b,c`): at most `max`, each a UUID.
pub(crate) fn parse_id_list(field: &str, raw: &str, max: usize) -> Result<Vec<uuid::Uuid>, ApiError> {
    let ids: Vec<&str> = raw.split(',').map(str::trim).filter(|id| !id.is_empty()).collect();
    if ids.len() > max {
        return Err(ApiError::invalid_field(field, format!("at most {max} ids")));
    }
    ids.into_iter()
        .map(|id| uuid::Uuid::try_parse(id).map_err(|_| ApiError::invalid_field(field, format!("{id:?} is not an id"))))
        .collect()
}

/// The time part of a keyset cursor: microseconds since the epoch, within the years 1 to 9999
/// (what both backends store, and the only years SQLite's text timestamps sort right).
pub(crate) fn cursor_time(micros: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::Datelike;
    micros
        .parse()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .filter(|time| (1..=9999).contains(&time.year()))
}
