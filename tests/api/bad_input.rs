//! What the API makes of awkward input: text no database can store (U+0000) in bodies, query
//! strings and path segments; bodies that start like JSON and are not; a field's other names
//! (Chatify's and the seed front ends'), and a field given twice; unknown extra fields.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, Reply, TestApp, TestUser, spawn_app, text};

const MESSAGE: &str = "/api/v1/message";
const DELETE: &str = "/api/v1/message/delete";
const CONVERSATION: &str = "/api/v1/conversation";

/// Two users and their direct conversation.
async fn pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    (ana, bo, conversation)
}

/// Checks a 422 `validation_failed` whose `fields` names `field`.
#[track_caller]
fn assert_invalid_field(reply: &Reply, field: &str, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{case}: unexpected status; body: {}",
        reply.body
    );
    assert_eq!(reply.body["status"], "error", "{case}: {}", reply.body);
    assert_eq!(
        reply.body["error"]["code"], "validation_failed",
        "{case}: {}",
        reply.body
    );
    assert!(
        reply.body["error"]["fields"].get(field).is_some(),
        "{case}: `fields` does not name {field:?}: {}",
        reply.body
    );
}

/// Every message of the conversation as `reader` sees it, newest first.
async fn messages(app: &TestApp, reader: &TestUser, conversation: &str) -> Vec<Value> {
    let reply = app.list_messages(&reader.token, conversation, "limit=100").await;
    reply.data(StatusCode::OK)["messages"].as_array().unwrap().clone()
}

/// The stored message a send answered with, after checking it was stored (201).
#[track_caller]
fn sent(reply: &Reply, case: &str) -> Value {
    assert_eq!(reply.status, StatusCode::CREATED, "{case}: {}", reply.body);
    reply.data(StatusCode::CREATED)["message"].clone()
}

// ---- U+0000 ------------------------------------------------------------------------------

async fn a_message_text_holding_nul_is_refused_naming_message(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let kept = app.send_text(&ana, &conversation, "kept as it is").await;

    // Act
    let send = app
        .post(
            MESSAGE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "message": "a\u{0}b"}),
        )
        .await;
    let edit = app
        .patch(
            &format!("{MESSAGE}/{kept}"),
            Some(&ana.token),
            &json!({"message": "a\u{0}b"}),
        )
        .await;

    // Assert
    assert_invalid_field(&send, "message", "send");
    assert_invalid_field(&edit, "message", "edit");
    let stored = messages(&app, &ana, &conversation).await;
    assert_eq!(stored.len(), 1, "nothing was sent: {stored:?}");
    assert_eq!(stored[0]["content"], "kept as it is", "nothing was edited");
    assert_eq!(stored[0]["editedAt"], Value::Null);
}

async fn a_group_name_holding_nul_is_refused_naming_name(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let group = app.group_conversation(&ana, "Club", &[&bo]).await;

    // Act
    let create = app.create_group(&ana.token, "a\u{0}b", &[&bo.id]).await;
    let rename = app
        .patch(
            &format!("{CONVERSATION}/{group}"),
            Some(&ana.token),
            &json!({"name": "a\u{0}b"}),
        )
        .await;

    // Assert
    assert_invalid_field(&create, "name", "create");
    assert_invalid_field(&rename, "name", "rename");
    let listed = app.list_conversations(&ana.token, "").await;
    let conversations = listed.data(StatusCode::OK)["conversations"].as_array().unwrap().clone();
    assert_eq!(conversations.len(), 1, "no second group: {conversations:?}");
    assert_eq!(conversations[0]["name"], "Club", "not renamed");
}

async fn a_search_query_holding_nul_is_refused_naming_q(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    app.send_text(&ana, &conversation, "a b").await;
    let cases = [
        ("one conversation", format!("{MESSAGE}/{conversation}/search?q=%00")),
        (
            "one conversation, inside a word",
            format!("{MESSAGE}/{conversation}/search?q=a%00b"),
        ),
        ("every conversation", format!("{MESSAGE}/search?q=a%00b")),
        ("every conversation, alone", format!("{MESSAGE}/search?q=%00&limit=5")),
    ];
    for (case, path) in cases {
        // Act
        let reply = app.get(&path, Some(&ana.token)).await;

        // Assert
        assert_invalid_field(&reply, "q", case);
    }
}

async fn a_path_segment_holding_nul_is_refused_naming_the_route_parameter(backend: Backend) {
    // Arrange: the names are the routes' own (`#[get("/{id}")]`, `/{conversationId}`, `/{chatId}/accept`)
    let app = spawn_app(backend).await;
    let (ana, _bo, _conversation) = pair(&app).await;
    let cases = [
        (Method::GET, "/api/v1/conversation/%00", None, "id"),
        (Method::GET, "/api/v1/conversation/a%00b", None, "id"),
        (Method::POST, "/api/v1/conversation/%00/pin", None, "id"),
        (Method::GET, "/api/v1/message/%00", None, "conversationId"),
        (
            Method::GET,
            "/api/v1/message/%00/search?q=hello",
            None,
            "conversationId",
        ),
        (
            Method::PATCH,
            "/api/v1/message/%00",
            Some(json!({"message": "hello"})),
            "id",
        ),
        (Method::POST, "/api/v1/chat-request/%00/accept", None, "chatId"),
        (Method::GET, "/api/v1/user/%00", None, "id"),
    ];
    for (method, path, body, parameter) in cases {
        // Act
        let reply = app.call(method.clone(), path, Some(&ana.token), body.as_ref()).await;

        // Assert
        assert_invalid_field(&reply, parameter, &format!("{method} {path}"));
    }
}

// ---- bodies that start like JSON ---------------------------------------------------------

async fn a_body_that_starts_like_json_but_is_not_gets_400_invalid_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let cases = [
        "[1".to_string(),
        format!(r#"{{"convo_id": "{conversation}", "message": "hi"}} garbage"#),
        r#"{"convo_id": "x"} garbage"#.to_string(),
        r#"{"message": "#.to_string(),
    ];
    for body in cases {
        // Act
        let reply = app
            .post_raw(MESSAGE, Some(&ana.token), "application/json", body.clone())
            .await;

        // Assert
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert!(messages(&app, &ana, &conversation).await.is_empty(), "nothing was sent");
}

async fn json_that_parses_but_has_the_wrong_shape_gets_422_validation_failed(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let cases = [
        "[1]".to_string(),
        format!(r#"{{"message": 5, "convo_id": "{conversation}"}}"#),
    ];
    for body in cases {
        // Act
        let reply = app
            .post_raw(MESSAGE, Some(&ana.token), "application/json", body.clone())
            .await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    assert!(messages(&app, &ana, &conversation).await.is_empty(), "nothing was sent");
}

// ---- other names for a field -------------------------------------------------------------

async fn the_text_of_a_message_may_be_sent_as_text_or_body(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;

    for name in ["text", "body"] {
        // Act
        let reply = app
            .post(
                MESSAGE,
                Some(&ana.token),
                &json!({"convo_id": conversation, name: format!("sent as {name}")}),
            )
            .await;

        // Assert
        let message = sent(&reply, name);
        assert_eq!(message["content"], format!("sent as {name}"), "{name}");
    }
    let contents: Vec<Value> = messages(&app, &bo, &conversation)
        .await
        .iter()
        .map(|message| message["content"].clone())
        .collect();
    assert_eq!(
        contents,
        [json!("sent as body"), json!("sent as text")],
        "stored as sent"
    );
}

async fn reply_names_the_message_answered_like_reply_to(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let question = app.send_text(&bo, &conversation, "pizza tonight?").await;

    // Act
    let reply = app
        .post(
            MESSAGE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "message": "yes!", "reply": question}),
        )
        .await;

    // Assert
    let message = sent(&reply, "reply");
    assert_eq!(message["replyTo"]["_id"], question.as_str(), "{message}");
    assert_eq!(message["replyTo"]["content"], "pizza tonight?");
    let stored = messages(&app, &bo, &conversation).await;
    assert_eq!(stored[0]["replyTo"]["_id"], question.as_str(), "stored with its quote");
}

async fn cid_names_the_conversation_like_convo_id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;

    // Act
    let reply = app
        .post(
            MESSAGE,
            Some(&ana.token),
            &json!({"cid": conversation, "message": "via cid"}),
        )
        .await;

    // Assert
    let message = sent(&reply, "cid");
    assert_eq!(message["conversation"], conversation.as_str());
    assert_eq!(messages(&app, &bo, &conversation).await[0]["_id"], message["_id"]);
}

async fn delete_type_myself_means_scope_me(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let message = app.send_text(&ana, &conversation, "hide me").await;

    // Act
    let reply = app
        .post(
            DELETE,
            Some(&bo.token),
            &json!({"convo_id": conversation, "ids": [message], "type": "myself"}),
        )
        .await;

    // Assert
    assert_eq!(reply.data(StatusCode::OK)["scope"], "me", "{}", reply.body);
    assert!(messages(&app, &bo, &conversation).await.is_empty(), "hidden from Bo");
    let for_ana = messages(&app, &ana, &conversation).await;
    assert_eq!(
        (for_ana.len(), &for_ana[0]["deleted"]),
        (1, &json!(false)),
        "Ana still sees it: {for_ana:?}"
    );
}

async fn delete_type_all_deletes_for_everyone(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let message = app.send_text(&ana, &conversation, "oops").await;

    // Act
    let reply = app
        .post(
            DELETE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "ids": [message], "type": "all"}),
        )
        .await;

    // Assert
    assert_eq!(
        reply.data(StatusCode::OK),
        &json!({"conversationId": conversation, "messageIds": [message], "scope": "all"})
    );
    let for_bo = messages(&app, &bo, &conversation).await;
    assert_eq!(for_bo.len(), 1, "{for_bo:?}");
    assert_eq!(
        (for_bo[0]["_id"].as_str(), for_bo[0]["deleted"].as_bool()),
        (Some(message.as_str()), Some(true)),
        "Bo sees a tombstone"
    );
    assert_eq!(for_bo[0]["content"], "");
}

async fn a_field_given_under_two_names_with_different_values_is_refused_naming_it(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let other = app.direct_conversation(&ana, &carl).await;
    let message = app.send_text(&ana, &conversation, "still here").await;
    let cases = [
        (
            MESSAGE,
            json!({"convo_id": conversation, "message": "a", "text": "b"}),
            "message",
        ),
        (
            MESSAGE,
            json!({"convo_id": conversation, "message": "a", "body": "b"}),
            "message",
        ),
        (
            MESSAGE,
            json!({"convo_id": conversation, "cid": other, "message": "a"}),
            "convo_id",
        ),
        (
            DELETE,
            json!({"convo_id": conversation, "ids": [message], "scope": "me", "type": "all"}),
            "scope",
        ),
        (
            DELETE,
            json!({"convo_id": conversation, "ids": [message], "scope": "all", "type": "myself"}),
            "scope",
        ),
    ];
    for (path, body, field) in cases {
        // Act
        let reply = app.post(path, Some(&ana.token), &body).await;

        // Assert
        assert_invalid_field(&reply, field, &body.to_string());
    }
    let stored = messages(&app, &ana, &conversation).await;
    assert_eq!(stored.len(), 1, "nothing sent: {stored:?}");
    assert_eq!(stored[0]["deleted"], false, "nothing deleted");
    assert!(
        messages(&app, &ana, &other)
            .await
            .iter()
            .all(|message| message["content"] != "a")
    );
}

async fn a_field_given_under_two_names_with_the_same_value_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let message = app.send_text(&ana, &conversation, "to delete").await;

    // Act
    let send = app
        .post(
            MESSAGE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "cid": conversation, "message": "same", "text": "same"}),
        )
        .await;
    let delete = app
        .post(
            DELETE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "ids": [message], "scope": "all", "type": "all"}),
        )
        .await;

    // Assert
    assert_eq!(sent(&send, "send")["content"], "same");
    assert_eq!(delete.data(StatusCode::OK)["scope"], "all", "{}", delete.body);
    let for_bo = messages(&app, &bo, &conversation).await;
    assert_eq!(for_bo[0]["content"], "same");
    assert_eq!(for_bo[1]["deleted"], true);
}

// ---- extra fields ------------------------------------------------------------------------

async fn unknown_extra_fields_are_ignored(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;

    // Act
    let register = app
        .post(
            "/api/v1/auth/register",
            None,
            &json!({
                "name": "Cy",
                "email": "cy@example.com",
                "password": PASSWORD,
                "confirmPassword": PASSWORD,
                "acceptTerms": true,
            }),
        )
        .await;
    let send = app
        .post(
            MESSAGE,
            Some(&ana.token),
            &json!({"convo_id": conversation, "message": "hi", "messageType": "text", "files": []}),
        )
        .await;

    // Assert
    let registered = register.data(StatusCode::CREATED);
    assert_eq!(registered["user"]["email"], "cy@example.com");
    let login = app.login("cy@example.com", PASSWORD).await;
    assert_eq!(text(&login.data(StatusCode::OK)["user"]["name"]), "Cy");
    assert_eq!(sent(&send, "send")["content"], "hi");
    assert_eq!(messages(&app, &bo, &conversation).await.len(), 1);
}

both_backends!(
    a_message_text_holding_nul_is_refused_naming_message,
    a_group_name_holding_nul_is_refused_naming_name,
    a_search_query_holding_nul_is_refused_naming_q,
    a_path_segment_holding_nul_is_refused_naming_the_route_parameter,
    a_body_that_starts_like_json_but_is_not_gets_400_invalid_json,
    json_that_parses_but_has_the_wrong_shape_gets_422_validation_failed,
    the_text_of_a_message_may_be_sent_as_text_or_body,
    reply_names_the_message_answered_like_reply_to,
    cid_names_the_conversation_like_convo_id,
    delete_type_myself_means_scope_me,
    delete_type_all_deletes_for_everyone,
    a_field_given_under_two_names_with_different_values_is_refused_naming_it,
    a_field_given_under_two_names_with_the_same_value_is_accepted,
    unknown_extra_fields_are_ignored,
);
