//! What a message carries beyond its text (replies, custom data) and what happens to it
//! after it is sent (edits, stars, deletes).

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

async fn pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    (ana, bo, conversation)
}

async fn edit(app: &TestApp, user: &TestUser, message: &str, text: &str) -> crate::helpers::Reply {
    app.patch(
        &format!("/api/v1/message/{message}"),
        Some(&user.token),
        &json!({ "message": text }),
    )
    .await
}

async fn star(app: &TestApp, user: &TestUser, message: &str) -> crate::helpers::Reply {
    app.post(
        &format!("/api/v1/message/{message}/star"),
        Some(&user.token),
        &json!({}),
    )
    .await
}

async fn the_sender_edits_a_message_and_everyone_sees_message_updated(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let message = app.send_text(&ana, &conversation, "helo").await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let reply = edit(&app, &ana, &message, "hello").await;

    let edited = reply.data(StatusCode::OK)["message"].clone();
    assert_eq!(edited["_id"], message.as_str());
    assert_eq!(edited["content"], "hello");
    assert!(edited["editedAt"].is_string());
    let event = bo_stream.next_of("message.updated").await;
    assert_eq!(event.data, edited, "the event carries the edited message");
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"][0], edited);
    let conversations = app.list_conversations(&bo.token, "").await;
    assert_eq!(
        conversations.data(StatusCode::OK)["conversations"][0]["lastMessage"],
        "hello"
    );
}

async fn editing_is_refused_to_others_outsiders_and_bad_text(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let message = app.send_text(&ana, &conversation, "mine").await;

    edit(&app, &bo, &message, "hijacked")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    edit(&app, &carl, &message, "hijacked")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    edit(&app, &ana, &uuid::Uuid::now_v7().to_string(), "x")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for bad in ["", "   ", &"a".repeat(10_001)] {
        edit(&app, &ana, &message, bad)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let listed = app.list_messages(&ana.token, &conversation, "").await;
    let stored = &listed.data(StatusCode::OK)["messages"][0];
    assert_eq!(
        (stored["content"].as_str(), stored["editedAt"].is_null()),
        (Some("mine"), true)
    );
}

async fn stars_toggle_per_user_and_list_most_recent_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut messages = Vec::new();
    for text in ["one", "two", "three"] {
        messages.push(app.send_text(&ana, &conversation, text).await);
    }
    let mut other_device = app.open_stream(Auth::Bearer(&bo.token), None).await;

    for message in [&messages[1], &messages[0], &messages[2]] {
        assert_eq!(star(&app, &bo, message).await.data(StatusCode::OK)["starred"], true);
    }
    assert_eq!(
        star(&app, &bo, &messages[2]).await.data(StatusCode::OK)["starred"],
        false,
        "a second star unstars"
    );

    let event = other_device.next_of("message.starred").await;
    assert_eq!(
        event.data,
        json!({"messageId": messages[1], "conversationId": conversation, "starred": true})
    );
    let pages = app
        .walk_pages(&bo.token, "/api/v1/message/starred", "messages", 1)
        .await;
    let starred: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|message| message["_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        starred,
        [messages[0].as_str(), messages[1].as_str()],
        "most recently starred first"
    );
    let for_ana = app.get("/api/v1/message/starred", Some(&ana.token)).await;
    assert_eq!(
        for_ana.data(StatusCode::OK)["messages"],
        json!([]),
        "stars are per user"
    );
}

async fn starring_is_refused_outside_the_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let message = app.send_text(&ana, &conversation, "private").await;

    star(&app, &carl, &message)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    star(&app, &carl, "not-an-id")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    let listed = app
        .get("/api/v1/message/starred?before=garbage", Some(&carl.token))
        .await;
    listed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn a_reply_carries_a_compact_quote_of_the_message_it_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let question = app.send_text(&ana, &conversation, "Lunch?").await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let reply = app
        .post(
            "/api/v1/message",
            Some(&bo.token),
            &json!({"convo_id": conversation, "message": "Yes!", "replyTo": question}),
        )
        .await;

    let answer = reply.data(StatusCode::CREATED)["message"].clone();
    let quote = json!({
        "_id": question, "sender": {"_id": ana.id, "name": "Ana"}, "content": "Lunch?",
        "hasAttachments": false, "attachmentType": null,
    });
    assert_eq!(answer["replyTo"], quote);
    // (A stream opened without a position may first repeat events from just before it opened.)
    ana_stream.next_until(|event| event.data == answer).await;
    let listed = app.list_messages(&ana.token, &conversation, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"][0]["replyTo"], quote);
    let conversations = app.list_conversations(&ana.token, "").await;
    assert_eq!(
        conversations.data(StatusCode::OK)["conversations"][0]["latestMessage"],
        answer
    );
}

async fn a_reply_to_another_conversations_message_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let elsewhere = app.direct_conversation(&ana, &carl).await;
    let foreign = app.send_text(&ana, &elsewhere, "not here").await;

    for reply_to in [foreign, uuid::Uuid::now_v7().to_string()] {
        let body = json!({"convo_id": conversation, "message": "re", "replyTo": reply_to});
        let reply = app.post("/api/v1/message", Some(&bo.token), &body).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.body["error"]["fields"]["replyTo"].is_string(), "{}", reply.body);
    }
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"], json!([]), "nothing stored");
}

async fn custom_data_is_returned_untouched_and_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, _bo, conversation) = pair(&app).await;
    let x = json!({"kind": "poll", "options": ["🍕", "🍣"], "nested": {"n": 1.5, "ok": true, "none": null}});
    let send_x = |x: serde_json::Value| {
        let (app, token, conversation) = (&app, ana.token.clone(), conversation.clone());
        async move {
            app.post(
                "/api/v1/message",
                Some(&token),
                &json!({"convo_id": conversation, "message": "x", "x": x}),
            )
            .await
        }
    };

    let stored = send_x(x.clone()).await;
    assert_eq!(stored.data(StatusCode::CREATED)["message"]["x"], x);
    let listed = app.list_messages(&ana.token, &conversation, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"][0]["x"], x);

    // `{"p":"…"}` is 8 bytes around the string: 4,096 bytes in all is the limit.
    let at_limit = json!({"p": "a".repeat(4096 - 8)});
    send_x(at_limit).await.data(StatusCode::CREATED);
    for bad in [
        json!({"p": "a".repeat(4096 - 7)}),
        json!([1, 2]),
        json!("text"),
        json!(3),
    ] {
        let reply = send_x(bad).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(reply.body["error"]["fields"]["x"].is_string(), "{}", reply.body);
    }
}

async fn unread(app: &TestApp, user: &TestUser, conversation: &str) -> i64 {
    let reply = app.get_conversation(&user.token, conversation).await;
    reply.data(StatusCode::OK)["conversation"]["unreadCount"]
        .as_i64()
        .unwrap()
}

async fn deleting_for_everyone_leaves_a_tombstone_and_tells_everyone(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let message = app.send_text(&ana, &conversation, "oops").await;
    app.send_text(&ana, &conversation, "fine").await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    assert_eq!(unread(&app, &bo, &conversation).await, 2);

    let reply = app.delete_message(&ana, &message, "all").await;

    let expected = json!({"conversationId": conversation, "messageIds": [message], "scope": "all"});
    assert_eq!(reply.data(StatusCode::OK), &expected);
    assert_eq!(bo_stream.next_of("message.deleted").await.data, expected);
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    let tombstone = &listed.data(StatusCode::OK)["messages"][1];
    assert_eq!(
        (tombstone["_id"].as_str(), tombstone["deleted"].as_bool()),
        (Some(message.as_str()), Some(true))
    );
    assert_eq!(tombstone["content"], "");
    assert_eq!(
        unread(&app, &bo, &conversation).await,
        1,
        "a deleted message is not unread"
    );
    assert_eq!(
        app.get("/api/v1/message/totals", Some(&bo.token))
            .await
            .data(StatusCode::OK)["totalUnreadMessages"],
        1
    );
    edit(&app, &ana, &message, "again")
        .await
        .assert_error(StatusCode::CONFLICT, "message_deleted");
}

async fn deleting_for_oneself_hides_it_from_that_user_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let first = app.send_text(&ana, &conversation, "one").await;
    let second = app.send_text(&ana, &conversation, "two").await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let reply = app
        .post(
            "/api/v1/message/delete",
            Some(&bo.token),
            &json!({"convo_id": conversation, "ids": [first, second]}),
        )
        .await;

    assert_eq!(reply.data(StatusCode::OK)["scope"], "me", "me is the default");
    assert!(
        app.list_messages(&bo.token, &conversation, "")
            .await
            .data(StatusCode::OK)["messages"]
            == json!([])
    );
    assert_eq!(
        unread(&app, &bo, &conversation).await,
        0,
        "hidden messages are not unread"
    );
    let for_ana = app.list_messages(&ana.token, &conversation, "").await;
    assert_eq!(
        for_ana.data(StatusCode::OK)["messages"].as_array().unwrap().len(),
        2,
        "Ana still sees both"
    );
    ana_stream
        .assert_no("message.deleted", std::time::Duration::from_millis(300))
        .await;
}

async fn deleting_is_refused_for_others_messages_outsiders_and_foreign_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let message = app.send_text(&ana, &conversation, "mine").await;
    let elsewhere = app.direct_conversation(&ana, &carl).await;
    let foreign = app.send_text(&ana, &elsewhere, "elsewhere").await;

    app.delete_message(&bo, &message, "all")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.delete_message(&carl, &message, "me")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.delete_message(&ana, &message, "nobody")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    for ids in [json!([]), json!([foreign])] {
        let body = json!({"convo_id": conversation, "ids": ids, "scope": "all"});
        app.post("/api/v1/message/delete", Some(&ana.token), &body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    assert_eq!(
        listed.data(StatusCode::OK)["messages"][0]["deleted"],
        false,
        "nothing was deleted"
    );
}

async fn a_groups_owner_may_delete_any_message_for_everyone(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let created = app.create_group(&ana.token, "Club", &[&bo.id]).await;
    let group = created.data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let by_bo = app.send_text(&bo, &group, "spam").await;

    app.delete_message(&ana, &by_bo, "all").await.data(StatusCode::OK);

    let listed = app.list_messages(&bo.token, &group, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"][0]["deleted"], true);
}

both_backends!(
    deleting_for_everyone_leaves_a_tombstone_and_tells_everyone,
    deleting_for_oneself_hides_it_from_that_user_only,
    deleting_is_refused_for_others_messages_outsiders_and_foreign_ids,
    a_groups_owner_may_delete_any_message_for_everyone,
    a_reply_carries_a_compact_quote_of_the_message_it_answers,
    a_reply_to_another_conversations_message_is_refused,
    custom_data_is_returned_untouched_and_bounded,
    the_sender_edits_a_message_and_everyone_sees_message_updated,
    editing_is_refused_to_others_outsiders_and_bad_text,
    stars_toggle_per_user_and_list_most_recent_first,
    starring_is_refused_outside_the_conversation,
);
