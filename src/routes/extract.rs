//! The request extractors every handler uses instead of actix's own `web::Json`, `web::Query`
//! and `web::Path`. They add the rules that hold for every input, in one place:
//! - a body that is not JSON is a 400 `invalid_json`, even where serde would have reported a
//!   type error first (the body is parsed as JSON before it is read into its type);
//! - text that a database cannot store ([`domain::storable`]) is a 422 naming the field, in
//!   bodies, query strings and path segments alike.
//!
//! - a field that the seed APIs spell another way is accepted under each of its names
//!   ([`FieldAliases`]); given under two names with different values, it is a 422.
//!
//! Unknown body fields are ignored, as front ends often send extras (`confirmPassword`).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain;
use crate::error::{ApiError, ErrorCode};

type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, actix_web::Error>>>>;

/// A JSON body read into `T`.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Another name under which clients send a body field (`text` for `message`), and, when the
/// other API spells the values differently too, how its values read here.
#[derive(Clone, Copy)]
pub struct Alias {
    pub field: &'static str,
    pub name: &'static str,
    /// `(theirs, ours)` value pairs; other values pass unchanged.
    pub values: &'static [(&'static str, &'static str)],
}

impl Alias {
    pub const fn new(field: &'static str, name: &'static str) -> Self {
        Self {
            field,
            name,
            values: &[],
        }
    }
}

/// The other names of a request body's fields: every body type says, even when it has none,
/// so that adding one is a line here and not a per-handler merge.
pub trait FieldAliases {
    const ALIASES: &'static [Alias] = &[];
}

impl FieldAliases for Value {}

impl<T: DeserializeOwned + FieldAliases + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Extracting<Self>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // actix's extractor keeps the size limit, the content type and their errors.
        let body = web::Json::<Value>::from_request(request, payload);
        Box::pin(async move { Ok(Json(from_json_value(body.await?.into_inner())?)) })
    }
}

/// An optional JSON body given as bytes (routes whose body may be empty): `T` from it.
pub fn parse_json<T: DeserializeOwned + FieldAliases>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| crate::error::deserialize_error(&error))?;
    from_json_value(value)
}

/// `T` from parsed JSON: 422 for unstorable text, a field given twice, or the wrong shape.
fn from_json_value<T: DeserializeOwned + FieldAliases>(mut value: Value) -> Result<T, ApiError> {
    check_storable(&value, &mut String::new())?;
    if let Value::Object(fields) = &mut value {
        apply_aliases(fields, T::ALIASES)?;
    }
    serde_json::from_value(value).map_err(|error| ApiError::validation(error.to_string()))
}

/// Moves every aliased field to its own name; the same value under two names is one value.
fn apply_aliases(fields: &mut serde_json::Map<String, Value>, aliases: &[Alias]) -> Result<(), ApiError> {
    for alias in aliases {
        let Some(mut given) = fields.remove(alias.name) else {
            continue;
        };
        if let Some(ours) = given
            .as_str()
            .and_then(|theirs| alias.values.iter().find(|(from, _)| *from == theirs))
            .map(|(_, ours)| *ours)
        {
            given = Value::from(ours);
        }
        match fields.get(alias.field) {
            Some(existing) if *existing != given => {
                return Err(ApiError::invalid_field(
                    alias.field,
                    format!(
                        "given as `{}` and as `{}` with different values",
                        alias.field, alias.name
                    ),
                ));
            }
            Some(_) => {}
            None => {
                fields.insert(alias.field.to_string(), given);
            }
        }
    }
    Ok(())
}

/// Walks every string and key of `value`; `at` is the path so far (`x.note`, `ids[1]`).
fn check_storable(value: &Value, at: &mut String) -> Result<(), ApiError> {
    let refuse = |at: &str, problem: String| ApiError::invalid_field(if at.is_empty() { "body" } else { at }, problem);
    match value {
        Value::String(text) => domain::storable(text).map_err(|problem| refuse(at, problem)),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            let length = at.len();
            at.push_str(&format!("[{index}]"));
            check_storable(item, at)?;
            at.truncate(length);
            Ok(())
        }),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            let length = at.len();
            if !at.is_empty() {
                at.push('.');
            }
            at.push_str(key);
            domain::storable(key).map_err(|problem| refuse(at, problem))?;
            check_storable(item, at)?;
            at.truncate(length);
            Ok(())
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A query string read into `T`.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = unstorable_query_field(request.query_string())
            .map_or(Ok(()), |field| Err(unstorable(&field)))
            .map_err(actix_web::Error::from)
            .and_then(|()| {
                // actix's extractor keeps the configured error for a malformed query.
                web::Query::<T>::from_request(request, payload).into_inner()
            });
        std::future::ready(checked.map(|query| Query(query.into_inner())))
    }
}

/// The name of the first query parameter whose name or value holds U+0000 (`%00`).
fn unstorable_query_field(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (holds_nul(name) || holds_nul(value)).then(|| name.replace("%00", "").replace('+', " "))
    })
}

/// A path segment, or a tuple of them, read into `T`.
pub struct Path<T>(pub T);

impl<T> Path<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Path<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Path<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let unstorable_segment = request.match_info().iter().find(|(_, value)| holds_nul(value));
        let extracted = match unstorable_segment {
            Some((name, _)) => Err(unstorable(name).into()),
            None => web::Path::<T>::from_request(request, payload).into_inner(),
        };
        std::future::ready(extracted.map(|path| Path(path.into_inner())))
    }
}

/// U+0000, raw or percent-encoded.
fn holds_nul(raw: &str) -> bool {
    raw.contains('\0') || raw.contains("%00")
}

fn unstorable(field: &str) -> ApiError {
    let problem = domain::storable("\0").err().unwrap_or_default();
    ApiError::invalid_field(field, problem)
}

impl ApiError {
    /// 422 for JSON of the wrong shape, in serde's words (which name the field).
    fn validation(message: String) -> Self {
        ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            message,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_holding_nul_are_named() {
        assert_eq!(unstorable_query_field("q=a%00b&limit=2"), Some("q".into()));
        assert_eq!(unstorable_query_field("limit=2&q=%00"), Some("q".into()));
        assert_eq!(unstorable_query_field("q=hello&limit=2"), None);
        assert_eq!(unstorable_query_field(""), None);
    }

    #[test]
    fn aliases_move_to_their_field_and_must_agree() {
        const ALIASES: &[Alias] = &[
            Alias::new("message", "text"),
            Alias {
                field: "scope",
                name: "type",
                values: &[("myself", "me")],
            },
        ];
        let mut fields = serde_json::json!({"text": "hi", "type": "myself"})
            .as_object()
            .unwrap()
            .clone();
        apply_aliases(&mut fields, ALIASES).unwrap();
        assert_eq!(
            Value::Object(fields),
            serde_json::json!({"message": "hi", "scope": "me"})
        );
        let mut same = serde_json::json!({"message": "hi", "text": "hi"})
            .as_object()
            .unwrap()
            .clone();
        assert!(apply_aliases(&mut same, ALIASES).is_ok());
        let mut different = serde_json::json!({"scope": "all", "type": "myself"})
            .as_object()
            .unwrap()
            .clone();
        assert!(
            apply_aliases(&mut different, ALIASES)
                .unwrap_err()
                .to_string()
                .contains("scope")
        );
    }

    #[test]
    fn bodies_name_the_field_holding_nul() {
        let body = serde_json::json!({"message": "ok", "x": {"note": ["fine", "a\u{0}b"]}});
        let error = check_storable(&body, &mut String::new()).unwrap_err();
        assert_eq!(error.code(), ErrorCode::ValidationFailed);
        assert!(error.to_string().contains("x.note[1]"), "{error}");
        assert!(check_storable(&serde_json::json!({"message": "ok"}), &mut String::new()).is_ok());
    }
}
