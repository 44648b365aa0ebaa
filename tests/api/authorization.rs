//! Nobody reaches into a conversation they are not in. The operations to try are read from the
//! OpenAPI document, not listed here, so a conversation- or message-scoped route added later
//! is swept without touching this file: every operation under `/conversation`, `/message` and
//! `/chat-request` whose path has a parameter, or whose body names a conversation. An outsider
//! calling each one with a valid request gets 404 `not_found` (existence is never revealed),
//! and the victims' conversations, messages and events stay exactly as they were.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

/// The resources whose operations are scoped to a conversation or a message.
const SCOPED_PREFIXES: [&str; 3] = ["/api/v1/conversation", "/api/v1/message", "/api/v1/chat-request"];

/// Body properties that name a conversation, under any of its spellings.
const CONVERSATION_PROPERTIES: [&str; 7] = [
    "convo_id",
    "convoId",
    "conversationId",
    "conversation_id",
    "cid",
    "chatId",
    "chat_id",
];

/// The path item keys that are operations.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// How many scoped operations the spec has today; the sweep must find at least these.
const OPERATIONS_TODAY: usize = 16;

// ---- the spec ----------------------------------------------------------------------------

/// One operation of the spec.
struct Operation<'a> {
    method: Method,
    /// The path template, `{param}`s and all.
    path: &'a str,
    spec: &'a Value,
}

impl Operation<'_> {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn parameters(&self) -> impl Iterator<Item = &Value> {
        self.spec["parameters"].as_array().into_iter().flatten()
    }

    /// The JSON request body's schema, if the operation takes a body.
    fn body_schema(&self) -> Option<&Value> {
        self.spec
            .pointer("/requestBody/content/application~1json/schema")
            .filter(|schema| !schema.is_null())
    }
}

fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// `schema` with `$ref`s followed into `components`.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference
                .strip_prefix('#')
                .and_then(|pointer| spec.pointer(pointer))
                .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
            resolve(spec, target)
        }
        None => schema,
    }
}

/// The schema's type, leaving out `null` (`["string", "null"]` is a string).
fn schema_type(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(kind) => Some(kind.as_str()),
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|kind| *kind != "null"),
        _ => None,
    }
}

/// The first alternative of a `oneOf`/`anyOf`/`allOf` that is not `null`.
fn alternative<'a>(spec: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|key| schema[*key].as_array())
        .flatten()
        .map(|option| resolve(spec, option))
        .find(|option| schema_type(option) != Some("null") && option["type"] != "null")
}

/// Whether a body schema has a property that names a conversation.
fn names_a_conversation(spec: &Value, schema: &Value) -> bool {
    let schema = resolve(spec, schema);
    schema["properties"].as_object().is_some_and(|properties| {
        properties
            .keys()
            .any(|name| CONVERSATION_PROPERTIES.contains(&name.as_str()))
    })
}

/// Every conversation- or message-scoped operation of the spec, in the spec's order.
fn scoped_operations(spec: &Value) -> Vec<Operation<'_>> {
    let paths = spec["paths"].as_object().expect("the spec has paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        if !SCOPED_PREFIXES.iter().any(|prefix| is_under(path, prefix)) {
            continue;
        }
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let operation = Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path,
                spec: operation,
            };
            let has_path_parameter = path.contains('{');
            let body_names_a_conversation = operation
                .body_schema()
                .is_some_and(|schema| names_a_conversation(spec, schema));
            if has_path_parameter || body_names_a_conversation {
                operations.push(operation);
            }
        }
    }
    operations
}

// ---- valid requests ----------------------------------------------------------------------

/// What an outsider aims at: a conversation and one of its messages.
#[derive(Clone, Copy)]
struct Target<'a> {
    conversation: &'a str,
    message: &'a str,
    /// A participant, for fields naming a user.
    user: &'a str,
}

fn lowercase(text: &str) -> String {
    text.to_lowercase().replace(['_', '-'], "")
}

/// The id a uuid field or parameter called `name` (described as `description`, on `path`)
/// gets: the conversation, the message, or a participant.
fn id_for<'a>(name: &str, description: &str, path: &str, target: Target<'a>) -> &'a str {
    let name = lowercase(name);
    let description = description.to_lowercase();
    let is_conversation =
        name.contains("convo") || name.contains("conversation") || name == "cid" || name.contains("chat");
    let is_message = ["message", "ids", "upto", "reply", "before", "after"]
        .iter()
        .any(|word| name.contains(word));
    let is_user = ["user", "receiver", "participant", "member", "add", "remove"]
        .iter()
        .any(|word| name.contains(word));
    if is_conversation {
        target.conversation
    } else if is_message {
        target.message
    } else if is_user {
        target.user
    } else if description.contains("message") || (name == "id" && is_under(path, "/api/v1/message")) {
        target.message
    } else {
        target.conversation
    }
}

/// A valid value for a field called `name` of this schema.
fn value_for(spec: &Value, schema: &Value, name: &str, path: &str, target: Target<'_>) -> Value {
    let schema = resolve(spec, schema);
    if schema_type(schema).is_none()
        && let Some(option) = alternative(spec, schema)
    {
        return value_for(spec, option, name, path, target);
    }
    if let Some(first) = schema["enum"]
        .as_array()
        .and_then(|values| values.iter().find(|value| !value.is_null()))
    {
        return first.clone();
    }
    match schema_type(schema) {
        Some("string") if schema["format"] == "uuid" => {
            let description = schema["description"].as_str().unwrap_or_default();
            json!(id_for(name, description, path, target))
        }
        Some("string") => schema.get("example").cloned().unwrap_or_else(|| json!("hello")),
        Some("boolean") => json!(true),
        Some("integer" | "number") => json!(schema["minimum"].as_i64().unwrap_or(0).max(1)),
        Some("array") => json!([value_for(spec, &schema["items"], name, path, target)]),
        Some("object") => object_for(spec, schema, path, target),
        _ => Value::Null,
    }
}

/// Whether a property is a plain value (text, number, flag), not an object or a list.
fn is_scalar(spec: &Value, schema: &Value) -> bool {
    let schema = resolve(spec, schema);
    matches!(schema_type(schema), Some("string" | "boolean" | "integer" | "number"))
}

/// A valid object: its required properties, or, when none is required (an update), its plain
/// ones, so that the request asks for a change.
fn object_for(spec: &Value, schema: &Value, path: &str, target: Target<'_>) -> Value {
    let schema = resolve(spec, schema);
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let chosen: Vec<&str> = if required.is_empty() {
        properties
            .iter()
            .filter(|(_, property)| is_scalar(spec, property))
            .map(|(name, _)| name.as_str())
            .collect()
    } else {
        required
    };
    let mut object = Map::new();
    for name in chosen {
        let property = properties.get(name).unwrap_or(&Value::Null);
        object.insert(name.to_string(), value_for(spec, property, name, path, target));
    }
    Value::Object(object)
}

/// The operation's URL and body, filled for `target`.
fn request_for(spec: &Value, operation: &Operation<'_>, target: Target<'_>) -> (String, Option<Value>) {
    let mut path = operation.path.to_string();
    let mut query = Vec::new();
    for parameter in operation.parameters() {
        let name = parameter["name"].as_str().unwrap();
        let description = parameter["description"].as_str().unwrap_or_default();
        match parameter["in"].as_str() {
            Some("path") => {
                let schema = resolve(spec, &parameter["schema"]);
                let value = if schema["format"] == "uuid" || schema_type(schema) == Some("string") {
                    id_for(name, description, operation.path, target).to_string()
                } else {
                    value_for(spec, schema, name, operation.path, target).to_string()
                };
                path = path.replace(&format!("{{{name}}}"), &value);
            }
            Some("query") if parameter["required"] == true => {
                let value = match value_for(spec, &parameter["schema"], name, operation.path, target) {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                query.push(format!("{name}={value}"));
            }
            _ => {}
        }
    }
    assert!(
        !path.contains('{'),
        "{}: a path parameter is not declared",
        operation.label()
    );
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let body = operation
        .body_schema()
        .map(|schema| value_for(spec, schema, "body", operation.path, target));
    (path, body)
}

// ---- what the victims see ----------------------------------------------------------------

/// `value` without the fields that are event positions (`eventId`): they move with any
/// event anywhere, not with a change to these conversations.
fn without_positions(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(name, _)| name.as_str() != "eventId")
                .map(|(name, field)| (name.clone(), without_positions(field)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_positions).collect()),
        other => other.clone(),
    }
}

/// Each victim conversation and its messages, as `user` sees them.
async fn view(app: &TestApp, user: &TestUser, conversations: &[&str]) -> Vec<Value> {
    let mut seen = Vec::new();
    for conversation in conversations {
        let one = app.get_conversation(&user.token, conversation).await;
        seen.push(without_positions(one.data(StatusCode::OK)));
        let messages = app.list_messages(&user.token, conversation, "limit=100").await;
        seen.push(without_positions(messages.data(StatusCode::OK)));
    }
    seen
}

fn is_not_found(reply: &Reply) -> bool {
    reply.status == StatusCode::NOT_FOUND
        && reply.body["status"] == "error"
        && reply.body["error"]["code"] == "not_found"
        && reply.body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty())
}

// ---- the sweep ---------------------------------------------------------------------------

async fn an_outsider_gets_404_from_every_conversation_and_message_operation_and_changes_nothing(backend: Backend) {
    // Arrange: Ana and Bo share a direct conversation and a group, each with a message by
    // each of them; Mallory is in neither.
    let spec: Value = serde_json::from_str(&chat_api::openapi::openapi_json()).expect("the spec is JSON");
    let operations = scoped_operations(&spec);
    let labels: Vec<String> = operations.iter().map(Operation::label).collect();
    println!("{} scoped operations swept:\n  {}", labels.len(), labels.join("\n  "));
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let mallory = app.register_user("Mallory").await;
    let direct = app.direct_conversation(&ana, &bo).await;
    let group = app.group_conversation(&ana, "Secret club", &[&bo]).await;
    let mut targets = Vec::new();
    for (kind, conversation) in [("direct", &direct), ("group", &group)] {
        for (author, text) in [(&ana, "from Ana"), (&bo, "from Bo")] {
            let message = app.send_text(author, conversation, text).await;
            targets.push((kind, author.name.clone(), conversation.clone(), message));
        }
    }
    let conversations = [direct.as_str(), group.as_str()];
    let ana_before = view(&app, &ana, &conversations).await;
    let bo_before = view(&app, &bo, &conversations).await;
    // On PostgreSQL the log lists an event once it is final: wait for the last message's, so
    // that the stream resumes after every arranged event.
    let last_message = targets.last().map(|target| target.3.clone()).unwrap_or_default();
    let arranged = |events: &[Value]| events.iter().any(|event| event["data"]["_id"] == last_message.as_str());
    app.stored_events_once(&ana.token, arranged).await;
    app.stored_events_once(&bo.token, arranged).await;
    let (ana_events_before, ana_position) = app.stored_events(&ana.token).await;
    let (bo_events_before, _) = app.stored_events(&bo.token).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), Some(&ana_position)).await;
    assert_eq!(ana_stream.status, StatusCode::OK);

    // Act
    let mut failures = Vec::new();
    let mut calls = 0;
    for (kind, author, conversation, message) in &targets {
        let target = Target {
            conversation,
            message,
            user: &ana.id,
        };
        for operation in &operations {
            let (url, body) = request_for(&spec, operation, target);
            let reply = app
                .call(operation.method.clone(), &url, Some(&mallory.token), body.as_ref())
                .await;
            calls += 1;
            if !is_not_found(&reply) {
                failures.push(format!(
                    "{} ({kind} conversation, message by {author}) as {} {url} body {}: {} {}",
                    operation.label(),
                    operation.method,
                    body.map_or_else(|| "none".to_string(), |body| body.to_string()),
                    reply.status,
                    reply.body
                ));
            }
        }
    }

    // Assert
    assert!(
        operations.len() >= OPERATIONS_TODAY,
        "the sweep found {} scoped operations, fewer than the {OPERATIONS_TODAY} of today: {labels:?}",
        operations.len()
    );
    for expected in [
        "POST /api/v1/message",
        "POST /api/v1/message/delete",
        "GET /api/v1/conversation/{id}",
    ] {
        assert!(
            labels.iter().any(|label| label == expected),
            "{expected} is not swept: {labels:?}"
        );
    }
    assert_eq!(calls, targets.len() * operations.len());
    assert!(
        failures.is_empty(),
        "{} of {calls} calls by an outsider did not answer 404 not_found:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(view(&app, &ana, &conversations).await, ana_before, "Ana's view changed");
    assert_eq!(view(&app, &bo, &conversations).await, bo_before, "Bo's view changed");
    assert_eq!(
        app.stored_events(&ana.token).await.0,
        ana_events_before,
        "Ana got events"
    );
    assert_eq!(app.stored_events(&bo.token).await.0, bo_events_before, "Bo got events");
    let mut live = Vec::new();
    while let Some(Some(event)) = ana_stream.next_within(Duration::from_millis(500)).await {
        if event.event != "presence" {
            live.push(event);
        }
    }
    assert!(live.is_empty(), "Ana's stream carried the outsider's doings: {live:?}");
}

/// The sweep itself: it finds routes by path parameter and by a body naming a conversation,
/// and builds requests that name the target.
#[test]
fn the_sweep_reads_scoped_operations_and_valid_requests_from_the_spec() {
    // Arrange
    let spec = json!({
        "paths": {
            "/api/v1/message": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Send"}}}}}},
            "/api/v1/message/totals": {"get": {}},
            "/api/v1/message/{id}": {"patch": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}, "description": "The message's id"}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string", "example": "Hi"}}}}}}
            }},
            "/api/v1/conversation/{id}/read": {"post": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"upTo": {"type": ["string", "null"], "format": "uuid"}}}}}}
            }},
            "/api/v1/user/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]}}
        },
        "components": {"schemas": {
            "Send": {"type": "object", "required": ["cid", "ids", "scope"], "properties": {
                "cid": {"type": "string", "format": "uuid"},
                "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                "scope": {"$ref": "#/components/schemas/Scope"},
                "x": {"type": ["object", "null"]}
            }},
            "Scope": {"type": "string", "enum": ["me", "all"]}
        }}
    });
    let target = Target {
        conversation: "C",
        message: "M",
        user: "U",
    };

    // Act
    let mut swept: Vec<(String, String, Option<Value>)> = scoped_operations(&spec)
        .iter()
        .map(|operation| {
            let (url, body) = request_for(&spec, operation, target);
            (operation.label(), url, body)
        })
        .collect();
    swept.sort_by(|left, right| left.0.cmp(&right.0));

    // Assert
    let swept: Vec<(&str, &str, Option<Value>)> = swept
        .iter()
        .map(|(label, url, body)| (label.as_str(), url.as_str(), body.clone()))
        .collect();
    assert_eq!(
        swept,
        [
            (
                "PATCH /api/v1/message/{id}",
                "/api/v1/message/M",
                Some(json!({"message": "Hi"}))
            ),
            (
                "POST /api/v1/conversation/{id}/read",
                "/api/v1/conversation/C/read",
                Some(json!({"upTo": "M"}))
            ),
            (
                "POST /api/v1/message",
                "/api/v1/message",
                Some(json!({"cid": "C", "ids": ["M"], "scope": "me"}))
            ),
        ]
    );
}

both_backends!(an_outsider_gets_404_from_every_conversation_and_message_operation_and_changes_nothing);
