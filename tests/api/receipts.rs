//! Read receipts, unread counts and totals.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

async fn read(app: &TestApp, user: &TestUser, conversation: &str, body: Value) -> crate::helpers::Reply {
    app.post(
        &format!("/api/v1/conversation/{conversation}/read"),
        Some(&user.token),
        &body,
    )
    .await
}

async fn unread(app: &TestApp, user: &TestUser, conversation: &str) -> i64 {
    let reply = app.get_conversation(&user.token, conversation).await;
    reply.data(StatusCode::OK)["conversation"]["unreadCount"]
        .as_i64()
        .unwrap()
}

async fn totals(app: &TestApp, user: &TestUser) -> Value {
    app.get("/api/v1/message/totals", Some(&user.token))
        .await
        .data(StatusCode::OK)
        .clone()
}

async fn reading_up_to_a_message_moves_unread_counts_receipts_and_totals(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let ids = [
        app.send_text(&ana, &conversation, "1").await,
        app.send_text(&ana, &conversation, "2").await,
    ];
    app.send_text(&ana, &conversation, "3").await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    assert_eq!(unread(&app, &bo, &conversation).await, 3);
    assert_eq!(
        totals(&app, &bo).await,
        json!({"totalUnreadMessages": 3, "totalPendingRequest": 0})
    );

    let reply = read(&app, &bo, &conversation, json!({"upTo": ids[1]})).await;

    assert_eq!(reply.data(StatusCode::OK)["upTo"], ids[1].as_str());
    assert_eq!(unread(&app, &bo, &conversation).await, 1);
    assert_eq!(totals(&app, &bo).await["totalUnreadMessages"], 1);
    let event = ana_stream.next_of("message.read").await;
    assert_eq!(
        event.data,
        json!({"conversationId": conversation, "userId": bo.id, "upTo": ids[1]})
    );
    let listed = app.list_messages(&ana.token, &conversation, "").await;
    let states: Vec<(&str, i64)> = listed.data(StatusCode::OK)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| (message["status"].as_str().unwrap(), message["readBy"].as_i64().unwrap()))
        .collect();
    assert_eq!(states, [("sent", 0), ("read", 1), ("read", 1)], "newest first");
}

async fn reading_everything_and_never_going_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let first = app.send_text(&ana, &conversation, "1").await;
    let last = app.send_text(&ana, &conversation, "2").await;

    let everything = app
        .post_raw(
            &format!("/api/v1/conversation/{conversation}/read"),
            Some(&bo.token),
            "application/json",
            "",
        )
        .await;

    assert_eq!(everything.data(StatusCode::OK)["upTo"], last.as_str());
    assert_eq!(unread(&app, &bo, &conversation).await, 0);
    let backwards = read(&app, &bo, &conversation, json!({"upTo": first})).await;
    assert_eq!(
        backwards.data(StatusCode::OK)["upTo"],
        last.as_str(),
        "the read position never moves back"
    );
    let latest =
        app.list_conversations(&ana.token, "").await.data(StatusCode::OK)["conversations"][0]["latestMessage"].clone();
    assert_eq!(
        (latest["status"].as_str(), latest["readBy"].as_i64()),
        (Some("read"), Some(1))
    );
}

async fn group_receipts_count_readers(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let created = app.create_group(&ana.token, "Trio", &[&bo.id, &cy.id]).await;
    let group = created.data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send_text(&ana, &group, "hi all").await;

    read(&app, &bo, &group, json!({})).await.data(StatusCode::OK);

    let message = app.list_messages(&ana.token, &group, "").await.data(StatusCode::OK)["messages"][0].clone();
    assert_eq!(
        (message["readBy"].as_i64(), message["status"].as_str()),
        (Some(1), Some("sent"))
    );
    read(&app, &cy, &group, json!({})).await.data(StatusCode::OK);
    let message = app.list_messages(&ana.token, &group, "").await.data(StatusCode::OK)["messages"][0].clone();
    assert_eq!(
        (message["readBy"].as_i64(), message["status"].as_str()),
        (Some(2), Some("read"))
    );
}

async fn read_receipts_are_refused_outside_the_conversation_and_for_foreign_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let carl = app.register_user("Carl").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let elsewhere = app.direct_conversation(&ana, &carl).await;
    let foreign = app.send_text(&ana, &elsewhere, "not here").await;

    read(&app, &carl, &conversation, json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let reply = read(&app, &bo, &conversation, json!({"upTo": foreign})).await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    read(&app, &bo, &conversation, json!({"upTo": 5}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

both_backends!(
    reading_up_to_a_message_moves_unread_counts_receipts_and_totals,
    reading_everything_and_never_going_back,
    group_receipts_count_readers,
    read_receipts_are_refused_outside_the_conversation_and_for_foreign_messages,
);
