//! Events never outlive what they show (issue 9): after an edit or a delete for everyone, no
//! read of the log (`GET /events`, a stream replay) returns the old text, in the message's own
//! events, in replies quoting it, or in conversation views showing it as the latest message;
//! and a member added to a group reads the group's events from their joining on.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, text};
use crate::sse::Auth;

const SECRET: &str = "the launch code is 0451";

/// Ana sends `SECRET` to Bo, Bo answers quoting it, and Ana pins the conversation. Returns
/// both, the conversation and the secret message's id.
async fn secret_shown_everywhere(app: &TestApp) -> (TestUser, TestUser, String, String) {
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = app.direct_conversation(&ana, &bo).await;
    let secret = app.send_text(&ana, &conversation, SECRET).await;
    let reply = app
        .post(
            "/api/v1/message",
            Some(&bo.token),
            &json!({"convo_id": conversation, "message": "noted", "replyTo": secret}),
        )
        .await;
    reply.data(StatusCode::CREATED);
    let pinned = app
        .post(
            &format!("/api/v1/conversation/{conversation}/pin"),
            Some(&ana.token),
            &json!({}),
        )
        .await;
    assert!(pinned.status.is_success(), "{}", pinned.body);
    // Before the change, the log shows the text (so the checks below can fail).
    app.stored_events_once(&bo.token, |events| {
        events.iter().any(|event| event["data"]["replyTo"]["content"] == SECRET)
    })
    .await;
    (ana, bo, conversation, secret)
}

/// Everything `user` can read back from the log: a stream replayed from the start up to the
/// event of kind `last`, and `GET /events` from the start once it lists that event too.
async fn whole_log(app: &TestApp, user: &TestUser, last: &str) -> String {
    let mut stream = app.open_stream(Auth::Bearer(&user.token), Some("0")).await;
    let replayed: Vec<Value> = stream
        .next_until(|event| event.event == last)
        .await
        .into_iter()
        .map(|event| event.data)
        .collect();
    let stored = app
        .stored_events_once(&user.token, |events| events.iter().any(|event| event["event"] == last))
        .await;
    format!("{} {}", Value::Array(stored), Value::Array(replayed))
}

async fn an_edit_leaves_no_old_text_in_the_log(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, _, secret) = secret_shown_everywhere(&app).await;

    // Act
    let edited = app
        .patch(
            &format!("/api/v1/message/{secret}"),
            Some(&ana.token),
            &json!({"message": "see you at noon"}),
        )
        .await;
    edited.data(StatusCode::OK);

    // Assert: the old text is gone from both readers' logs; the new one is there, in the
    // original message.created as well as in the edit's event.
    for user in [&ana, &bo] {
        let log = whole_log(&app, user, "message.updated").await;
        assert!(!log.contains("0451"), "{log}");
        assert!(log.matches("see you at noon").count() >= 3, "{log}");
    }
    let (events, _) = app.stored_events(&bo.token).await;
    let created = events
        .iter()
        .find(|event| event["event"] == "message.created" && event["data"]["_id"] == secret.as_str())
        .expect("the message.created event stays");
    assert_eq!(created["data"]["content"], "see you at noon");
    assert!(created["data"]["editedAt"].is_string(), "{created}");
}

async fn repeated_edits_keep_one_update_event_per_message(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, _, secret) = secret_shown_everywhere(&app).await;

    // Act
    for version in 1..=5 {
        let edited = app
            .patch(
                &format!("/api/v1/message/{secret}"),
                Some(&ana.token),
                &json!({"message": format!("version {version}")}),
            )
            .await;
        edited.data(StatusCode::OK);
    }

    // Assert: one message.updated of the message, the last.
    let events = app
        .stored_events_once(&bo.token, |events| {
            // The edit's own event: the rewritten message.created is listed earlier, since
            // its position is the original one.
            events
                .iter()
                .any(|event| event["event"] == "message.updated" && event["data"]["content"] == "version 5")
        })
        .await;
    let updates: Vec<&Value> = events
        .iter()
        .filter(|event| event["event"] == "message.updated" && event["data"]["_id"] == secret.as_str())
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["data"]["content"], "version 5");
}

async fn a_delete_for_everyone_leaves_no_text_in_the_log(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, _, secret) = secret_shown_everywhere(&app).await;

    // Act
    let deleted = app.delete_message(&ana, &secret, "all").await;
    assert!(deleted.status.is_success(), "{}", deleted.body);

    // Assert: the text is gone; the original event now shows the tombstone.
    for user in [&ana, &bo] {
        let log = whole_log(&app, user, "message.deleted").await;
        assert!(!log.contains("0451"), "{log}");
    }
    let (events, _) = app.stored_events(&bo.token).await;
    let created = events
        .iter()
        .find(|event| event["event"] == "message.created" && event["data"]["_id"] == secret.as_str())
        .expect("the message.created event stays, as a tombstone");
    assert_eq!(created["data"]["deleted"], true);
    assert_eq!(created["data"]["content"], "");
}

async fn a_member_added_later_reads_the_group_log_from_their_joining(backend: Backend) {
    // Arrange: a group's past, then Cy is added.
    let app = spawn_app(backend).await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );
    let group = app.group_conversation(&ana, "Plans", &[&bo]).await;
    let before = app.send_text(&ana, &group, "before Cy came").await;

    // Act
    let added = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"add": [cy.id]}}),
        )
        .await;
    added.data(StatusCode::OK);
    let after = app.send_text(&ana, &group, "welcome Cy").await;

    // Assert: Cy's log starts at the joining (the group, then what came after); Bo's has it all.
    let cy_log = whole_log(&app, &cy, "message.created").await;
    assert!(!cy_log.contains("before Cy came"), "{cy_log}");
    let cy_events = app
        .stored_events_once(&cy.token, |events| {
            events.iter().any(|event| event["data"]["_id"] == after.as_str())
        })
        .await;
    let shown: Vec<String> = cy_events
        .iter()
        .filter(|event| event["event"] == "message.created")
        .map(|event| text(&event["data"]["_id"]))
        .collect();
    assert!(shown.contains(&after), "{cy_events:?}");
    assert!(!shown.contains(&before), "{cy_events:?}");
    assert!(
        cy_events.iter().any(|event| event["event"] == "conversation.created"),
        "{cy_events:?}"
    );
    let bo_events = app
        .stored_events_once(&bo.token, |events| {
            events.iter().any(|event| event["data"]["_id"] == after.as_str())
        })
        .await;
    assert!(Value::Array(bo_events).to_string().contains("before Cy came"));
    // The history itself stays readable.
    let history = app.list_messages(&cy.token, &group, "").await;
    assert!(history.body.to_string().contains("before Cy came"), "{}", history.body);
}

both_backends!(
    an_edit_leaves_no_old_text_in_the_log,
    repeated_edits_keep_one_update_event_per_message,
    a_delete_for_everyone_leaves_no_text_in_the_log,
    a_member_added_later_reads_the_group_log_from_their_joining
);
