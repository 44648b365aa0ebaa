//! `/api/v1/message`: sending messages (with idempotent retries) and reading a conversation's history.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, text};

/// Sends `text` and returns the stored message.
async fn send(app: &TestApp, sender: &TestUser, conversation: &str, text: &str) -> Value {
    let reply = app.send_message(&sender.token, conversation, text).await;
    reply.data(StatusCode::CREATED)["message"].clone()
}

/// Sends `count` messages "message 1", "message 2", ... and returns their ids, oldest first.
async fn send_many(app: &TestApp, sender: &TestUser, conversation: &str, count: usize) -> Vec<String> {
    let mut sent = Vec::with_capacity(count);
    for number in 1..=count {
        let message = send(app, sender, conversation, &format!("message {number}")).await;
        sent.push(message["_id"].as_str().unwrap().to_string());
    }
    sent
}

/// The `_id`s of a list of messages, in order.
fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {messages}"))
        .iter()
        .map(|message| message["_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every message of the conversation as `reader` sees it (one page of up to 100), newest first.
async fn all_messages(app: &TestApp, reader: &TestUser, conversation: &str) -> Value {
    let reply = app.list_messages(&reader.token, conversation, "limit=100").await;
    let data = reply.data(StatusCode::OK);
    assert_eq!(data["nextCursor"], Value::Null, "more than one page: {data}");
    data["messages"].clone()
}

/// The sorted keys of a JSON object.
fn keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Two users and their direct conversation.
async fn pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let conversation = app.direct_conversation(&ana, &bruno).await;
    (ana, bruno, conversation)
}

// ---- sending -----------------------------------------------------------------------------

async fn sending_a_message_returns_201_with_the_stored_message(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bruno, conversation) = pair(&app).await;

    // Act
    let reply = app.send_message(&ana.token, &conversation, "  Hello, Bruno!\n").await;

    // Assert
    let message = &reply.data(StatusCode::CREATED)["message"];
    assert_eq!(
        keys(message),
        [
            "_id",
            "attachments",
            "clientId",
            "content",
            "conversation",
            "createdAt",
            "deleted",
            "editedAt",
            "files",
            "imageUrl",
            "linkPreviewUrl",
            "readBy",
            "replyTo",
            "sender",
            "status",
            "x"
        ],
        "{message}"
    );
    assert!(Uuid::try_parse(message["_id"].as_str().unwrap()).is_ok(), "{message}");
    assert_eq!(message["conversation"], conversation.as_str());
    assert_eq!(message["sender"], json!({ "_id": ana.id, "name": "Ana" }));
    assert_eq!(message["content"], "  Hello, Bruno!\n", "the text is kept as sent");
    assert_eq!(message["files"], json!([]));
    assert_eq!(message["clientId"], Value::Null);
    assert!(chrono::DateTime::parse_from_rfc3339(message["createdAt"].as_str().unwrap()).is_ok());
    assert_eq!(
        all_messages(&app, &ana, &conversation).await,
        json!([message]),
        "stored as answered"
    );
}

async fn the_conversation_is_accepted_under_each_of_its_names(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bruno, conversation) = pair(&app).await;

    for field in ["convo_id", "conversationId", "convoId"] {
        // Act
        let reply = app
            .post(
                "/api/v1/message",
                Some(&ana.token),
                &json!({ field: conversation, "message": field }),
            )
            .await;

        // Assert
        assert_eq!(reply.status, StatusCode::CREATED, "{field}: {}", reply.body);
        let message = &reply.data(StatusCode::CREATED)["message"];
        assert_eq!(message["conversation"], conversation.as_str(), "{field}");
        assert_eq!(message["content"], field);
    }
    assert_eq!(ids(&all_messages(&app, &ana, &conversation).await).len(), 3);
}

async fn a_retry_with_the_same_client_id_returns_the_stored_message(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let first = app
        .send_message_with_client_id(&ana.token, &conversation, "see you at 8", "ana-phone-1")
        .await;
    let stored = first.data(StatusCode::CREATED)["message"].clone();
    assert_eq!(stored["clientId"], "ana-phone-1");

    // Act: the same send again, then once more with different text (a confused client).
    let retry = app
        .send_message_with_client_id(&ana.token, &conversation, "see you at 8", "ana-phone-1")
        .await;
    let changed = app
        .send_message_with_client_id(&ana.token, &conversation, "see you at 9", "ana-phone-1")
        .await;

    // Assert: 200 with the message exactly as stored the first time; stored once.
    assert_eq!(retry.data(StatusCode::OK)["message"], stored);
    assert_eq!(changed.data(StatusCode::OK)["message"], stored, "the first send wins");
    let messages = all_messages(&app, &bruno, &conversation).await;
    assert_eq!(messages, json!([stored]));
    let one = app.get_conversation(&bruno.token, &conversation).await;
    assert_eq!(
        one.data(StatusCode::OK)["conversation"]["unreadCount"],
        1,
        "one message, one unread"
    );
}

async fn concurrent_sends_with_one_client_id_store_one_message(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;

    // Act: ten sends with one clientId at once.
    let sends = (0..10).map(|_| app.send_message_with_client_id(&ana.token, &conversation, "only once", "tap-42"));
    let replies = join_all(sends).await;

    // Assert
    for reply in &replies {
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let distinct: BTreeSet<&str> = replies
        .iter()
        .map(|reply| reply.body["data"]["message"]["_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "every reply carries the one stored message: {distinct:?}"
    );
    let created = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one send stores it");
    let stored = ids(&all_messages(&app, &bruno, &conversation).await);
    assert_eq!(stored, [*distinct.first().unwrap()]);
}

async fn a_client_id_is_scoped_to_its_conversation_and_sender(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, with_bruno) = pair(&app).await;
    let carla = app.register_user("Carla").await;
    let with_carla = app.direct_conversation(&ana, &carla).await;

    // Act
    let to_bruno = app
        .send_message_with_client_id(&ana.token, &with_bruno, "hi", "same-key")
        .await;
    let to_carla = app
        .send_message_with_client_id(&ana.token, &with_carla, "hi", "same-key")
        .await;
    let from_bruno = app
        .send_message_with_client_id(&bruno.token, &with_bruno, "hi", "same-key")
        .await;

    // Assert: three different messages, each stored.
    let to_bruno = to_bruno.data(StatusCode::CREATED)["message"]["_id"].clone();
    let to_carla = to_carla.data(StatusCode::CREATED)["message"]["_id"].clone();
    let from_bruno = from_bruno.data(StatusCode::CREATED)["message"]["_id"].clone();
    assert_ne!(to_bruno, to_carla);
    assert_ne!(to_bruno, from_bruno);
    assert_eq!(ids(&all_messages(&app, &ana, &with_bruno).await).len(), 2);
    assert_eq!(ids(&all_messages(&app, &ana, &with_carla).await).len(), 1);
}

async fn invalid_sends_are_refused_with_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    /// What the 422 must name: a field in `error.fields`, or (for body shape problems caught
    /// while reading the JSON) a word in `error.message`.
    enum Names {
        Field(&'static str),
        InMessage(&'static str),
        Nothing,
    }
    let cases = [
        (
            "empty message",
            json!({ "convo_id": conversation, "message": "" }),
            Names::Field("message"),
        ),
        (
            "only white space",
            json!({ "convo_id": conversation, "message": " \n\t " }),
            Names::Field("message"),
        ),
        (
            "10,001 characters",
            json!({ "convo_id": conversation, "message": "a".repeat(10_001) }),
            Names::Field("message"),
        ),
        (
            "10,001 multi-byte characters",
            json!({ "convo_id": conversation, "message": "字".repeat(10_001) }),
            Names::Field("message"),
        ),
        (
            "message missing (and no files)",
            json!({ "convo_id": conversation }),
            Names::Field("message"),
        ),
        (
            "message not text",
            json!({ "convo_id": conversation, "message": 42 }),
            Names::Nothing,
        ),
        (
            "convo_id missing",
            json!({ "message": "hi" }),
            Names::InMessage("`convo_id`"),
        ),
        (
            "convo_id not a uuid",
            json!({ "convo_id": "general", "message": "hi" }),
            Names::Nothing,
        ),
        (
            "convo_id null",
            json!({ "convo_id": null, "message": "hi" }),
            Names::Nothing,
        ),
        (
            "clientId of 101 characters",
            json!({ "convo_id": conversation, "message": "hi", "clientId": "k".repeat(101) }),
            Names::Field("clientId"),
        ),
        (
            "empty clientId",
            json!({ "convo_id": conversation, "message": "hi", "clientId": "" }),
            Names::Field("clientId"),
        ),
    ];

    for (case, body, names) in cases {
        // Act
        let reply = app.post("/api/v1/message", Some(&ana.token), &body).await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {}", reply.body);
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        match names {
            Names::Field(field) => {
                assert!(
                    reply.body["error"]["fields"][field].is_string(),
                    "{case}: {}",
                    reply.body
                )
            }
            Names::InMessage(word) => assert!(
                reply.body["error"]["message"].as_str().unwrap().contains(word),
                "{case}: {}",
                reply.body
            ),
            Names::Nothing => {}
        }
    }
    assert_eq!(
        all_messages(&app, &bruno, &conversation).await,
        json!([]),
        "nothing was stored"
    );
}

async fn every_invalid_field_is_reported_at_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, _bruno, conversation) = pair(&app).await;

    // Act
    let reply = app
        .send_message_with_client_id(&ana.token, &conversation, "   ", &"k".repeat(101))
        .await;

    // Assert
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        keys(&reply.body["error"]["fields"]),
        ["clientId", "message"],
        "{}",
        reply.body
    );
}

async fn a_message_of_10000_multi_byte_characters_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let text = "字".repeat(10_000);
    let client_id = "é".repeat(100);

    // Act
    let reply = app
        .send_message_with_client_id(&ana.token, &conversation, &text, &client_id)
        .await;

    // Assert: the limits count characters, not bytes (this text is 30,000 bytes).
    let message = &reply.data(StatusCode::CREATED)["message"];
    assert_eq!(message["content"], text.as_str());
    assert_eq!(message["clientId"], client_id.as_str());
    let stored = all_messages(&app, &bruno, &conversation).await;
    assert_eq!(stored[0]["content"], text.as_str(), "stored whole");
}

// ---- who may send and read ---------------------------------------------------------------

async fn a_non_participant_can_neither_send_nor_read(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let carla = app.register_user("Carla").await;
    let hello = send(&app, &ana, &conversation, "hello Bruno").await;

    // Act
    let send_reply = app.send_message(&carla.token, &conversation, "let me in").await;
    let retry_reply = app
        .send_message_with_client_id(&carla.token, &conversation, "let me in", "carla-1")
        .await;
    let list_reply = app.list_messages(&carla.token, &conversation, "").await;

    // Assert: 404, as if the conversation did not exist, and nothing changed.
    send_reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    retry_reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    list_reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(all_messages(&app, &ana, &conversation).await, json!([hello]));
    assert_eq!(all_messages(&app, &bruno, &conversation).await, json!([hello]));
    let seen_by_bruno = app.get_conversation(&bruno.token, &conversation).await;
    let seen_by_bruno = &seen_by_bruno.data(StatusCode::OK)["conversation"];
    assert_eq!(seen_by_bruno["lastMessage"], "hello Bruno");
    assert_eq!(seen_by_bruno["unreadCount"], 1);
}

async fn an_unknown_conversation_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let unknown = Uuid::now_v7().to_string();

    // Act
    let send_reply = app.send_message(&ana.token, &unknown, "anyone?").await;
    let list_reply = app.list_messages(&ana.token, &unknown, "").await;
    let malformed = app.list_messages(&ana.token, "not-a-uuid", "").await;

    // Assert
    send_reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    list_reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    malformed.assert_error(StatusCode::BAD_REQUEST, "invalid_path");
}

async fn message_routes_need_an_access_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_ana, _bruno, conversation) = pair(&app).await;

    // Act
    let replies = [
        (
            "send",
            app.post(
                "/api/v1/message",
                None,
                &json!({ "convo_id": conversation, "message": "hi" }),
            )
            .await,
        ),
        ("list", app.get(&format!("/api/v1/message/{conversation}"), None).await),
    ];

    // Assert
    for (route, reply) in replies {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{route}: {}", reply.body);
        reply.assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    }
}

// ---- reading -----------------------------------------------------------------------------

async fn the_list_is_newest_first_with_each_sender_as_id_and_name(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let first = send(&app, &ana, &conversation, "hi").await;
    let second = send(&app, &bruno, &conversation, "hey").await;
    let third = send(&app, &ana, &conversation, "how are you?").await;

    // Act
    let reply = app.list_messages(&bruno.token, &conversation, "").await;

    // Assert: each as sent, but for the read state, which moved on: answering a message
    // means having read it.
    let data = reply.data(StatusCode::OK);
    let read = |mut message: Value| {
        message["readBy"] = json!(1);
        message["status"] = json!("read");
        message
    };
    assert_eq!(data["messages"], json!([third, read(second), read(first)]));
    assert_eq!(data["nextCursor"], Value::Null);
    let senders: Vec<&Value> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["sender"])
        .collect();
    assert_eq!(
        senders,
        [
            &json!({ "_id": ana.id, "name": "Ana" }),
            &json!({ "_id": bruno.id, "name": "Bruno" }),
            &json!({ "_id": ana.id, "name": "Ana" }),
        ]
    );
    // The messages, not `eventId`: on PostgreSQL the head moves once the last send is final.
    assert_eq!(
        app.list_messages(&ana.token, &conversation, "").await.body["data"]["messages"],
        reply.body["data"]["messages"],
        "both read the same"
    );
}

async fn the_list_holds_50_messages_by_default(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let sent = send_many(&app, &ana, &conversation, 55).await;

    // Act
    let first_page = app.list_messages(&bruno.token, &conversation, "").await;

    // Assert: the 50 newest, and a cursor at the oldest of them.
    let data = first_page.data(StatusCode::OK);
    let newest_50: Vec<String> = sent[5..].iter().rev().cloned().collect();
    assert_eq!(ids(&data["messages"]), newest_50);
    assert_eq!(data["nextCursor"], sent[5].as_str());
    let rest = app
        .list_messages(&bruno.token, &conversation, &format!("before={}", sent[5]))
        .await;
    let rest = rest.data(StatusCode::OK);
    let oldest_5: Vec<String> = sent[..5].iter().rev().cloned().collect();
    assert_eq!(ids(&rest["messages"]), oldest_5);
    assert_eq!(rest["nextCursor"], Value::Null);
}

async fn before_pages_through_every_message_exactly_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let sent = send_many(&app, &ana, &conversation, 8).await;

    // Act: pages of three, each starting before the previous page's cursor.
    let pages = app
        .walk_pages(&bruno.token, &format!("/api/v1/message/{conversation}"), "messages", 3)
        .await;

    // Assert
    let page_sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    let seen: Vec<String> = pages.iter().flatten().map(|item| text(&item["_id"])).collect();
    assert_eq!(page_sizes, [3, 3, 2]);
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "all eight once, newest first");
}

async fn after_returns_the_newer_messages_oldest_first(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    let sent = send_many(&app, &ana, &conversation, 5).await;
    let cases = [
        (format!("after={}", sent[1]), &sent[2..], None),
        (format!("after={}&limit=2", sent[1]), &sent[2..4], Some(&sent[3])),
        (format!("after={}&limit=2", sent[3]), &sent[4..], None),
        (format!("after={}", sent[4]), &sent[5..], None),
    ];

    for (query, expected, next_cursor) in cases {
        // Act
        let reply = app.list_messages(&bruno.token, &conversation, &query).await;

        // Assert
        let data = reply.data(StatusCode::OK);
        assert_eq!(ids(&data["messages"]), expected, "{query}");
        match next_cursor {
            Some(cursor) => assert_eq!(data["nextCursor"], cursor.as_str(), "{query}"),
            None => assert_eq!(data["nextCursor"], Value::Null, "{query}"),
        }
    }
}

async fn the_list_refuses_bad_paging_parameters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bruno, conversation) = pair(&app).await;
    send(&app, &ana, &conversation, "here").await;
    let carla = app.register_user("Carla").await;
    let elsewhere = app.direct_conversation(&ana, &carla).await;
    let foreign = send(&app, &ana, &elsewhere, "not in Bruno's conversation").await;
    let foreign = foreign["_id"].as_str().unwrap();
    let unknown = Uuid::now_v7();
    let cases = [
        (
            "limit=0".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "limit=101".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        ("limit=abc".to_string(), StatusCode::BAD_REQUEST, "invalid_query", None),
        (
            "before=not-a-uuid".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "after=not-a-uuid".to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            format!("before={foreign}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("before"),
        ),
        (
            format!("after={foreign}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("after"),
        ),
        (
            format!("before={unknown}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("before"),
        ),
    ];

    for (query, status, code, field) in cases {
        // Act
        let reply = app.list_messages(&bruno.token, &conversation, &query).await;

        // Assert
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
        reply.assert_error(status, code);
        if let Some(field) = field {
            assert!(
                reply.body["error"]["fields"][field].is_string(),
                "{query}: {}",
                reply.body
            );
        }
    }
    // The bounds themselves are accepted.
    for query in ["limit=1", "limit=100"] {
        app.list_messages(&bruno.token, &conversation, query)
            .await
            .data(StatusCode::OK);
    }
}

both_backends!(
    sending_a_message_returns_201_with_the_stored_message,
    the_conversation_is_accepted_under_each_of_its_names,
    a_retry_with_the_same_client_id_returns_the_stored_message,
    concurrent_sends_with_one_client_id_store_one_message,
    a_client_id_is_scoped_to_its_conversation_and_sender,
    invalid_sends_are_refused_with_422,
    every_invalid_field_is_reported_at_once,
    a_message_of_10000_multi_byte_characters_is_accepted,
    a_non_participant_can_neither_send_nor_read,
    an_unknown_conversation_is_404,
    message_routes_need_an_access_token,
    the_list_is_newest_first_with_each_sender_as_id_and_name,
    the_list_holds_50_messages_by_default,
    before_pages_through_every_message_exactly_once,
    after_returns_the_newer_messages_oldest_first,
    the_list_refuses_bad_paging_parameters,
);
