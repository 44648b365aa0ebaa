//! The HTTP layer: every route of the API, in one table ([`configure`]), and the helpers the
//! handlers share. Handlers extract and validate, call the store or a service, and shape the
//! answer; they hold no SQL.

pub mod auth;
pub mod blocks;
pub mod chat_requests;
pub mod contacts;
pub mod conversations;
pub mod envelope;
pub mod extract;
pub mod files;
pub mod health;
pub mod messages;
pub mod presence;
pub mod push;
pub mod stream;
pub mod users;

use actix_web::web;

use crate::error::ApiError;

/// Declares the route table ([`configure`]) and the OpenAPI paths ([`RouteDoc`]) from one
/// list, so that a route cannot be served undocumented or documented unserved.
macro_rules! route_table {
    (
        root: [$($root_module:ident::$root_handler:ident),* $(,)?],
        $prefix:literal: {
            $($scope:literal: [$($module:ident::$handler:ident),+ $(,)?]),+ $(,)?
        }
    ) => {
        /// The route table. Within a scope, literal paths come before `{id}` paths that would
        /// otherwise capture them (`/user/getme` before `/user/{id}`).
        pub fn configure(config: &mut web::ServiceConfig) {
            config
                $(.service($root_module::$root_handler))*
                .service(
                    web::scope($prefix)
                        $(.service(web::scope($scope)$(.service($module::$handler))+))+,
                );
        }

        /// The OpenAPI paths of every route in [`configure`], from their `#[utoipa::path]`.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($root_module::$root_handler,)* $($($module::$handler,)+)+))]
        pub struct RouteDoc;
    };
}

route_table! {
    root: [health::health, health::ready],
    "/api/v1": {
        "/auth": [auth::register, auth::login, auth::refresh_token, auth::logout],
        "/file": [
            files::upload_files,
            files::file_urls,
            files::create_upload_urls,
            files::complete_upload,
            files::put_content,
            files::download_thumbnail,
            files::download_file,
        ],
        "/user": [
            users::get_me,
            users::update_me,
            users::delete_me,
            users::change_password,
            presence::set_status,
            blocks::block_users,
            blocks::unblock_users,
            blocks::blocked_users,
            presence::subscribe,
            presence::unsubscribe,
            users::last_activity,
            users::users_by_ids,
            users::search_users,
            users::get_user,
        ],
        "/conversation": [
            conversations::create_conversation,
            conversations::list_conversations,
            conversations::list_participants,
            conversations::search_conversations,
            conversations::get_conversation,
            conversations::update_conversation,
            conversations::leave_conversation,
            conversations::toggle_pin,
            conversations::toggle_archive,
            conversations::toggle_mute,
            conversations::mark_read,
            conversations::send_typing,
        ],
        "/message": [
            messages::send_message,
            messages::delete_messages,
            messages::list_starred,
            messages::totals,
            messages::search_all,
            messages::search_conversation,
            messages::list_messages,
            messages::edit_message,
            messages::toggle_star,
            messages::delete_message,
        ],
        "/contact": [
            contacts::create_contacts,
            contacts::create_contact,
            contacts::list_contacts,
            contacts::get_contact,
            contacts::update_contact,
            contacts::delete_contact,
        ],
        "/chat-request": [
            chat_requests::create_chat_request,
            chat_requests::list_chat_requests,
            chat_requests::accept_chat_request,
            chat_requests::decline_chat_request,
        ],
        "/events": [stream::create_ticket, stream::open_stream, stream::list_events],
        "/push": [
            push::vapid_public_key,
            push::create_subscription,
            push::list_subscriptions,
            push::delete_subscription,
            push::create_event,
        ],
    }
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
collect_fields_for_tuple!(A, B, C, D);
collect_fields_for_tuple!(A, B, C, D, E);
collect_fields_for_tuple!(A, B, C, D, E, F);

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

/// A time given in a query string (`updatedAfter`): RFC 3339, within the years 1 to 9999 (what
/// both backends store, and the only years SQLite's text timestamps sort right); 422 naming
/// `field` otherwise.
pub(crate) fn rfc3339_time(field: &str, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    use chrono::Datelike;
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|time| time.with_timezone(&chrono::Utc))
        .filter(|time| (1..=9999).contains(&time.year()))
        .ok_or_else(|| ApiError::invalid_field(field, "must be an RFC 3339 time in the years 1 to 9999"))
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
