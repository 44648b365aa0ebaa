//! `/api/v1/conversation`: starting direct conversations, creating groups, listing and reading them.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, text};

/// The `_id`s of a list of conversations (or messages), in order.
fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|item| item["_id"].as_str().unwrap().to_string())
        .collect()
}

/// The user ids among a conversation's participants.
fn participant_ids(conversation: &Value) -> BTreeSet<String> {
    ids(&conversation["participants"]).into_iter().collect()
}

fn user_ids(users: &[&TestUser]) -> BTreeSet<String> {
    users.iter().map(|user| user.id.clone()).collect()
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

/// The caller's whole conversation list (one page of up to 100), ids newest activity first.
async fn listed_ids(app: &TestApp, user: &TestUser) -> Vec<String> {
    let reply = app.list_conversations(&user.token, "limit=100").await;
    ids(&reply.data(StatusCode::OK)["conversations"])
}

/// The caller's view of one conversation, taken from the list.
async fn listed(app: &TestApp, user: &TestUser, conversation: &str) -> Value {
    let reply = app.list_conversations(&user.token, "limit=100").await;
    let data = reply.data(StatusCode::OK);
    data["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["_id"] == conversation)
        .unwrap_or_else(|| panic!("{conversation} is not in {}'s list: {data}", user.name))
        .clone()
}

// ---- direct conversations ----------------------------------------------------------------

async fn starting_a_direct_conversation_returns_201_with_both_participants(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;

    // Act
    let reply = app.create_direct(&ana.token, &bruno.id).await;

    // Assert
    let conversation = &reply.data(StatusCode::CREATED)["conversation"];
    assert!(
        Uuid::try_parse(conversation["_id"].as_str().unwrap()).is_ok(),
        "{conversation}"
    );
    assert_eq!(conversation["type"], "direct");
    assert_eq!(conversation["name"], Value::Null);
    assert_eq!(conversation["owner"], Value::Null);
    assert_eq!(conversation["lastMessage"], Value::Null);
    assert_eq!(conversation["latestMessage"], Value::Null);
    assert_eq!(conversation["unreadCount"], 0);
    assert_eq!(participant_ids(conversation), user_ids(&[&ana, &bruno]));
    for participant in conversation["participants"].as_array().unwrap() {
        assert_eq!(
            keys(participant),
            [
                "_id",
                "about",
                "avatarThumbnailUrl",
                "avatarUrl",
                "createdAt",
                "name",
                "updatedAt"
            ],
            "emails and phones are shown only to their owner (issues 9, 11): {participant}"
        );
    }
    let bruno_as_participant = conversation["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|participant| participant["_id"] == bruno.id.as_str())
        .unwrap();
    assert_eq!(bruno_as_participant["name"], "Bruno");
    assert!(bruno_as_participant.get("email").is_none());
    let created_at = chrono::DateTime::parse_from_rfc3339(conversation["createdAt"].as_str().unwrap()).unwrap();
    let updated_at = chrono::DateTime::parse_from_rfc3339(conversation["updatedAt"].as_str().unwrap()).unwrap();
    assert_eq!(
        created_at, updated_at,
        "a new conversation's last activity is its creation"
    );
    let stored = app
        .get_conversation(&ana.token, conversation["_id"].as_str().unwrap())
        .await;
    assert_eq!(
        stored.data(StatusCode::OK)["conversation"],
        *conversation,
        "the answer is what was stored"
    );
}

async fn starting_the_same_direct_conversation_again_returns_200_with_the_same_id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let first = app.create_direct(&ana.token, &bruno.id).await;
    let id = first.data(StatusCode::CREATED)["conversation"]["_id"].clone();
    let cases = [
        ("Ana again, receiver_id", &ana, json!({ "receiver_id": bruno.id })),
        ("Bruno, receiver_id", &bruno, json!({ "receiver_id": ana.id })),
        ("Ana, receiverId alias", &ana, json!({ "receiverId": bruno.id })),
        ("Bruno, receiverId alias", &bruno, json!({ "receiverId": ana.id })),
        (
            "Bruno, explicit type direct",
            &bruno,
            json!({ "type": "direct", "receiver_id": ana.id }),
        ),
    ];

    for (case, caller, body) in cases {
        // Act
        let reply = app.post("/api/v1/conversation", Some(&caller.token), &body).await;

        // Assert
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
        let conversation = &reply.data(StatusCode::OK)["conversation"];
        assert_eq!(conversation["_id"], id, "{case}");
        assert_eq!(participant_ids(conversation), user_ids(&[&ana, &bruno]), "{case}");
    }
    assert_eq!(listed_ids(&app, &ana).await, [id.as_str().unwrap()]);
    assert_eq!(listed_ids(&app, &bruno).await, [id.as_str().unwrap()]);
}

async fn concurrent_starts_for_one_pair_create_exactly_one_conversation(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;

    // Act: 20 requests at once, half from each side.
    let requests = (0..20).map(|index| {
        let (caller, receiver) = if index % 2 == 0 { (&ana, &bruno) } else { (&bruno, &ana) };
        app.create_direct(&caller.token, &receiver.id)
    });
    let replies = join_all(requests).await;

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
        .map(|reply| reply.body["data"]["conversation"]["_id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 1, "one conversation per pair, got {distinct:?}");
    let created = replies
        .iter()
        .filter(|reply| reply.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one request creates it");
    let id = distinct.into_iter().next().unwrap();
    assert_eq!(listed_ids(&app, &ana).await, [id]);
    assert_eq!(listed_ids(&app, &bruno).await, [id]);
}

async fn a_direct_conversation_needs_a_valid_other_user(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let cases = [
        ("receiver missing", json!({}), Some("receiver_id")),
        ("receiver null", json!({ "receiver_id": null }), Some("receiver_id")),
        (
            "yourself as receiver",
            json!({ "receiver_id": ana.id }),
            Some("receiver_id"),
        ),
        (
            "yourself via the alias",
            json!({ "receiverId": ana.id }),
            Some("receiver_id"),
        ),
        (
            "unknown type",
            json!({ "type": "channel", "receiver_id": bruno.id }),
            Some("type"),
        ),
        // Not a UUID: refused while reading the body, so serde names the problem, not a field.
        ("receiver not a uuid", json!({ "receiver_id": "bruno" }), None),
        ("receiver a number", json!({ "receiver_id": 42 }), None),
    ];

    for (case, body, field) in cases {
        // Act
        let reply = app.post("/api/v1/conversation", Some(&ana.token), &body).await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {}", reply.body);
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        if let Some(field) = field {
            assert!(
                reply.body["error"]["fields"][field].is_string(),
                "{case}: {}",
                reply.body
            );
        }
    }
    assert!(listed_ids(&app, &ana).await.is_empty(), "nothing was created");
}

async fn a_direct_conversation_with_an_unknown_user_is_404(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    // Act
    let reply = app.create_direct(&ana.token, &Uuid::now_v7().to_string()).await;

    // Assert
    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(listed_ids(&app, &ana).await.is_empty());
}

// ---- groups ------------------------------------------------------------------------------

async fn creating_a_group_returns_201_with_the_creator_as_owner(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let carla = app.register_user("Carla").await;

    // Act: duplicates and the creator herself in the list are ignored.
    let reply = app
        .create_group(
            &ana.token,
            "  Weekend trip ",
            &[&bruno.id, &carla.id, &bruno.id, &ana.id],
        )
        .await;

    // Assert
    let group = &reply.data(StatusCode::CREATED)["conversation"];
    assert_eq!(group["type"], "group");
    assert_eq!(group["name"], "Weekend trip", "the name is trimmed");
    assert_eq!(group["owner"], ana.id.as_str());
    assert_eq!(group["participants"].as_array().unwrap().len(), 3, "{group}");
    assert_eq!(participant_ids(group), user_ids(&[&ana, &bruno, &carla]));
    assert_eq!(group["lastMessage"], Value::Null);
    assert_eq!(group["unreadCount"], 0);
    // Every member sees it, as it was answered.
    let id = group["_id"].as_str().unwrap();
    for member in [&ana, &bruno, &carla] {
        let reply = app.get_conversation(&member.token, id).await;
        assert_eq!(reply.data(StatusCode::OK)["conversation"], *group, "as {}", member.name);
        assert_eq!(listed_ids(&app, member).await, [id]);
    }
}

async fn creating_a_group_twice_makes_two_groups(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;

    // Act
    let first = app.create_group(&ana.token, "Book club", &[&bruno.id]).await;
    let second = app.create_group(&ana.token, "Book club", &[&bruno.id]).await;

    // Assert: unlike direct conversations, groups are not deduplicated.
    let first = &first.data(StatusCode::CREATED)["conversation"]["_id"];
    let second = &second.data(StatusCode::CREATED)["conversation"]["_id"];
    assert_ne!(first, second);
    assert_eq!(listed_ids(&app, &bruno).await.len(), 2);
}

async fn group_validation_names_the_failing_field(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let unknown = Uuid::now_v7().to_string();
    let cases = [
        (
            "missing name",
            json!({ "type": "group", "participants": [bruno.id] }),
            "name",
        ),
        (
            "empty name",
            json!({ "type": "group", "name": "", "participants": [bruno.id] }),
            "name",
        ),
        (
            "blank name",
            json!({ "type": "group", "name": "   ", "participants": [bruno.id] }),
            "name",
        ),
        (
            "101-character name",
            json!({ "type": "group", "name": "x".repeat(101), "participants": [bruno.id] }),
            "name",
        ),
        (
            "no participants",
            json!({ "type": "group", "name": "Team" }),
            "participants",
        ),
        (
            "empty participants",
            json!({ "type": "group", "name": "Team", "participants": [] }),
            "participants",
        ),
        (
            "only the creator",
            json!({ "type": "group", "name": "Team", "participants": [ana.id] }),
            "participants",
        ),
        (
            "unknown participant",
            json!({ "type": "group", "name": "Team", "participants": [bruno.id, unknown] }),
            "participants",
        ),
        (
            "name with a control character",
            json!({ "type": "group", "name": "Te\u{7}am", "participants": [bruno.id] }),
            "name",
        ),
    ];

    for (case, body, field) in cases {
        // Act
        let reply = app.post("/api/v1/conversation", Some(&ana.token), &body).await;

        // Assert
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {}", reply.body);
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            reply.body["error"]["fields"][field].is_string(),
            "{case}: {}",
            reply.body
        );
    }
    assert!(listed_ids(&app, &ana).await.is_empty(), "no group was created");
    assert!(listed_ids(&app, &bruno).await.is_empty(), "no group was created");
}

async fn group_validation_reports_every_failing_field_at_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    // Act
    let reply = app.create_group(&ana.token, "", &[]).await;

    // Assert
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        keys(&reply.body["error"]["fields"]),
        ["name", "participants"],
        "{}",
        reply.body
    );
}

async fn a_group_name_of_100_characters_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let name = "é".repeat(100);

    // Act
    let reply = app.create_group(&ana.token, &name, &[&bruno.id]).await;

    // Assert
    assert_eq!(reply.data(StatusCode::CREATED)["conversation"]["name"], name.as_str());
}

// ---- the list ----------------------------------------------------------------------------

async fn the_list_shows_the_most_recent_activity_first(backend: Backend) {
    // Arrange: three conversations, created oldest to newest.
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let carla = app.register_user("Carla").await;
    let dario = app.register_user("Dario").await;
    let with_bruno = app.direct_conversation(&ana, &bruno).await;
    let with_carla = app.direct_conversation(&ana, &carla).await;
    let group = app
        .create_group(&ana.token, "All of us", &[&bruno.id, &carla.id, &dario.id])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        listed_ids(&app, &ana).await,
        [group.as_str(), with_carla.as_str(), with_bruno.as_str()]
    );

    // Act: a message in the oldest conversation.
    app.send_message(&bruno.token, &with_bruno, "still there?")
        .await
        .data(StatusCode::CREATED);

    // Assert: it moved to the top; the others keep their order.
    assert_eq!(
        listed_ids(&app, &ana).await,
        [with_bruno.as_str(), group.as_str(), with_carla.as_str()]
    );
    assert_eq!(listed_ids(&app, &bruno).await, [with_bruno.as_str(), group.as_str()]);
}

async fn the_list_carries_the_last_message_and_the_unread_count(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let conversation = app.direct_conversation(&ana, &bruno).await;

    // Act: Ana sends three messages.
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let reply = app.send_message(&ana.token, &conversation, text).await;
        sent.push(reply.data(StatusCode::CREATED)["message"].clone());
    }

    // Assert: Bruno has three unread; Ana's own messages are not unread for her.
    let for_bruno = listed(&app, &bruno, &conversation).await;
    assert_eq!(for_bruno["unreadCount"], 3, "{for_bruno}");
    assert_eq!(for_bruno["lastMessage"], "three");
    assert_eq!(for_bruno["latestMessage"], sent[2], "the whole last message");
    assert_eq!(
        for_bruno["latestMessage"]["sender"],
        json!({ "_id": ana.id, "name": "Ana" })
    );
    assert_ne!(for_bruno["updatedAt"], for_bruno["createdAt"], "a message is activity");
    assert_eq!(
        for_bruno["updatedAt"], sent[2]["createdAt"],
        "last activity is the last message"
    );
    let for_ana = listed(&app, &ana, &conversation).await;
    assert_eq!(for_ana["unreadCount"], 0, "{for_ana}");
    assert_eq!(for_ana["lastMessage"], "three");
    // The single-conversation view agrees.
    let one = app.get_conversation(&bruno.token, &conversation).await;
    assert_eq!(one.data(StatusCode::OK)["conversation"]["unreadCount"], 3);

    // Act: Bruno answers.
    app.send_message(&bruno.token, &conversation, "four")
        .await
        .data(StatusCode::CREATED);

    // Assert: answering reads what came before; now Ana has one unread.
    let for_bruno = listed(&app, &bruno, &conversation).await;
    assert_eq!(for_bruno["unreadCount"], 0, "{for_bruno}");
    assert_eq!(for_bruno["lastMessage"], "four");
    let for_ana = listed(&app, &ana, &conversation).await;
    assert_eq!(for_ana["unreadCount"], 1, "{for_ana}");
    assert_eq!(for_ana["latestMessage"]["sender"]["_id"], bruno.id.as_str());
}

async fn the_unread_count_is_per_member_in_a_group(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let carla = app.register_user("Carla").await;
    let group = app
        .create_group(&ana.token, "Trio", &[&bruno.id, &carla.id])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Act
    app.send_message(&ana.token, &group, "hi all")
        .await
        .data(StatusCode::CREATED);
    app.send_message(&bruno.token, &group, "hi Ana")
        .await
        .data(StatusCode::CREATED);

    // Assert
    assert_eq!(listed(&app, &ana, &group).await["unreadCount"], 1);
    assert_eq!(listed(&app, &bruno, &group).await["unreadCount"], 0);
    assert_eq!(listed(&app, &carla, &group).await["unreadCount"], 2);
}

async fn the_list_pages_through_every_conversation_exactly_once(backend: Backend) {
    // Arrange: five conversations.
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let mut created = Vec::new();
    for name in ["Bruno", "Carla", "Dario", "Elena", "Fabio"] {
        let other = app.register_user(name).await;
        created.push(app.direct_conversation(&ana, &other).await);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // Act: pages of two, each starting at the previous page's cursor.
    let pages = app
        .walk_pages(&ana.token, "/api/v1/conversation", "conversations", 2)
        .await;

    // Assert
    let page_sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    let seen: Vec<String> = pages.iter().flatten().map(|item| text(&item["_id"])).collect();
    assert_eq!(page_sizes, [2, 2, 1]);
    assert_eq!(seen, newest_first, "every conversation once, newest activity first");
}

async fn a_full_last_page_has_no_next_cursor(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    for name in ["Bruno", "Carla"] {
        let other = app.register_user(name).await;
        app.direct_conversation(&ana, &other).await;
    }

    // Act
    let reply = app.list_conversations(&ana.token, "limit=2").await;

    // Assert
    let data = reply.data(StatusCode::OK);
    assert_eq!(ids(&data["conversations"]).len(), 2);
    assert_eq!(data["nextCursor"], Value::Null);
}

async fn the_list_refuses_bad_paging_parameters(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    app.direct_conversation(&ana, &bruno).await;
    let cases = [
        (
            "before=garbage",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("before"),
        ),
        (
            "before=",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("before"),
        ),
        (
            "before=12_notauuid",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("before"),
        ),
        (
            "limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        ("limit=abc", StatusCode::BAD_REQUEST, "invalid_query", None),
        ("limit=-1", StatusCode::BAD_REQUEST, "invalid_query", None),
    ];

    for (query, status, code, field) in cases {
        // Act
        let reply = app.list_conversations(&ana.token, query).await;

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
        app.list_conversations(&ana.token, query).await.data(StatusCode::OK);
    }
}

/// A cursor is `<microseconds since 1970>_<id>`: a well-formed one outside the years any
/// conversation lives in must still page like any other point in time.
/// Cursors are opaque, but a hand-made one can name any instant: one outside the years
/// 1..=9999 (beyond PostgreSQL's range, or unsortable as SQLite text) is refused, not a 500.
async fn a_cursor_outside_the_calendar_both_backends_store_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    app.direct_conversation(&ana, &bruno).await;

    for cursor in [
        // About 7500 BC: before PostgreSQL's earliest timestamp (4713 BC).
        format!("-300000000000000000_{}", Uuid::max().simple()),
        // 10000-01-01T00:00:00Z, the first instant with a five-digit year.
        format!("253402300800000000_{}", Uuid::nil().simple()),
    ] {
        // Act
        let reply = app.list_conversations(&ana.token, &format!("before={cursor}")).await;

        // Assert
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.body["error"]["fields"]["before"].is_string(), "{}", reply.body);
    }
}

// ---- one conversation and who may see it ------------------------------------------------

async fn a_participant_can_read_one_conversation(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let conversation = app.direct_conversation(&ana, &bruno).await;
    app.send_message(&ana.token, &conversation, "hello")
        .await
        .data(StatusCode::CREATED);

    for (reader, unread) in [(&ana, 0), (&bruno, 1)] {
        // Act
        let reply = app.get_conversation(&reader.token, &conversation).await;

        // Assert
        let data = &reply.data(StatusCode::OK)["conversation"];
        assert_eq!(data["_id"], conversation.as_str());
        assert_eq!(data["type"], "direct");
        assert_eq!(participant_ids(data), user_ids(&[&ana, &bruno]));
        assert_eq!(data["lastMessage"], "hello");
        assert_eq!(data["unreadCount"], unread, "for {}", reader.name);
        assert_eq!(
            *data,
            listed(&app, reader, &conversation).await,
            "the list shows the same"
        );
    }
}

async fn a_non_participant_gets_404_and_never_sees_others_conversations(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let carla = app.register_user("Carla").await;
    let dario = app.register_user("Dario").await;
    let direct = app.direct_conversation(&ana, &bruno).await;
    let group = app
        .create_group(&ana.token, "Ana and Bruno", &[&bruno.id])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let carlas_own = app.direct_conversation(&carla, &dario).await;

    for conversation in [&direct, &group] {
        // Act
        let reply = app.get_conversation(&carla.token, conversation).await;

        // Assert: the same answer as for a conversation that does not exist.
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
        assert!(reply.body["error"].get("fields").is_none(), "{}", reply.body);
    }
    assert_eq!(listed_ids(&app, &carla).await, [carlas_own.as_str()]);
    let mut anas = listed_ids(&app, &ana).await;
    anas.sort();
    let mut expected = vec![direct, group];
    expected.sort();
    assert_eq!(anas, expected, "Ana does not see Carla's conversation either");
}

async fn an_unknown_or_malformed_conversation_id_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let cases = [
        (Uuid::now_v7().to_string(), StatusCode::NOT_FOUND, "not_found"),
        (Uuid::nil().to_string(), StatusCode::NOT_FOUND, "not_found"),
        ("not-a-uuid".to_string(), StatusCode::BAD_REQUEST, "invalid_path"),
        ("12345".to_string(), StatusCode::BAD_REQUEST, "invalid_path"),
    ];

    for (id, status, code) in cases {
        // Act
        let reply = app.get_conversation(&ana.token, &id).await;

        // Assert
        assert_eq!(reply.status, status, "{id}: {}", reply.body);
        reply.assert_error(status, code);
    }
}

async fn conversation_routes_need_an_access_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bruno = app.register_user("Bruno").await;
    let conversation = app.direct_conversation(&ana, &bruno).await;

    // Act
    let replies = [
        (
            "create",
            app.post("/api/v1/conversation", None, &json!({ "receiver_id": bruno.id }))
                .await,
        ),
        ("list", app.get("/api/v1/conversation", None).await),
        (
            "get one",
            app.get(&format!("/api/v1/conversation/{conversation}"), None).await,
        ),
    ];

    // Assert
    for (route, reply) in replies {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{route}: {}", reply.body);
        reply.assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    }
}

both_backends!(
    starting_a_direct_conversation_returns_201_with_both_participants,
    starting_the_same_direct_conversation_again_returns_200_with_the_same_id,
    concurrent_starts_for_one_pair_create_exactly_one_conversation,
    a_direct_conversation_needs_a_valid_other_user,
    a_direct_conversation_with_an_unknown_user_is_404,
    creating_a_group_returns_201_with_the_creator_as_owner,
    creating_a_group_twice_makes_two_groups,
    group_validation_names_the_failing_field,
    group_validation_reports_every_failing_field_at_once,
    a_group_name_of_100_characters_is_accepted,
    the_list_shows_the_most_recent_activity_first,
    the_list_carries_the_last_message_and_the_unread_count,
    the_unread_count_is_per_member_in_a_group,
    the_list_pages_through_every_conversation_exactly_once,
    a_full_last_page_has_no_next_cursor,
    the_list_refuses_bad_paging_parameters,
    a_cursor_outside_the_calendar_both_backends_store_is_refused,
    a_participant_can_read_one_conversation,
    a_non_participant_gets_404_and_never_sees_others_conversations,
    an_unknown_or_malformed_conversation_id_is_refused,
    conversation_routes_need_an_access_token,
);
