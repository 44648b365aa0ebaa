//! Chat requests: a stranger's direct conversation waits until its recipient accepts.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

async fn request(app: &TestApp, from: &TestUser, to: &TestUser) -> Reply {
    app.post("/api/v1/chat-request", Some(&from.token), &json!({"userId": to.id}))
        .await
}

async fn answer(app: &TestApp, user: &TestUser, chat: &str, verb: &str) -> Reply {
    app.post(
        &format!("/api/v1/chat-request/{chat}/{verb}"),
        Some(&user.token),
        &json!({}),
    )
    .await
}

async fn listed(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    let reply = app
        .get(&format!("/api/v1/chat-request?{query}"), Some(&user.token))
        .await;
    reply.data(StatusCode::OK)["chatRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| request["chatId"].as_str().unwrap().to_string())
        .collect()
}

async fn a_pending_request_waits_in_requests_until_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let created = request(&app, &ana, &bo).await;

    let data = created.data(StatusCode::CREATED)["chatRequest"].clone();
    assert_eq!(data["status"], "pending");
    assert_eq!(data["requester"], json!({"_id": ana.id, "name": "Ana"}));
    let chat = data["chatId"].as_str().unwrap().to_string();
    assert_eq!(bo_stream.next_of("chat_request.created").await.data, data);
    app.send_text(&ana, &chat, "hi, we met at the conference").await;
    assert_eq!(
        listed(&app, &bo, "").await,
        std::slice::from_ref(&chat),
        "incoming pending by default"
    );
    assert_eq!(
        listed(&app, &ana, "direction=outgoing").await,
        std::slice::from_ref(&chat)
    );
    let bo_list = app.list_conversations(&bo.token, "").await;
    assert_eq!(
        bo_list.data(StatusCode::OK)["conversations"],
        json!([]),
        "not in the recipient's main list"
    );
    let totals = app.get("/api/v1/message/totals", Some(&bo.token)).await;
    assert_eq!(totals.data(StatusCode::OK)["totalPendingRequest"], 1);
    let early = app.send_message(&bo.token, &chat, "can I answer?").await;
    early.assert_error(StatusCode::FORBIDDEN, "forbidden");

    let accepted = answer(&app, &bo, &chat, "accept").await;

    assert_eq!(accepted.data(StatusCode::OK)["chatRequest"]["status"], "accepted");
    assert_eq!(
        bo_stream.next_of("chat_request.accepted").await.data["chatId"],
        chat.as_str()
    );
    let bo_list = app.list_conversations(&bo.token, "").await;
    assert_eq!(bo_list.data(StatusCode::OK)["conversations"][0]["_id"], chat.as_str());
    app.send_text(&bo, &chat, "sure!").await;
    assert!(listed(&app, &bo, "").await.is_empty());
    assert_eq!(
        app.get("/api/v1/message/totals", Some(&bo.token))
            .await
            .data(StatusCode::OK)["totalPendingRequest"],
        0
    );
}

async fn a_declined_request_takes_no_more_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let chat = request(&app, &ana, &bo).await.data(StatusCode::CREATED)["chatRequest"]["chatId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), Some("0")).await;

    answer(&app, &bo, &chat, "decline").await.data(StatusCode::OK);

    assert_eq!(
        ana_stream.next_of("chat_request.declined").await.data["status"],
        "declined"
    );
    app.send_message(&ana.token, &chat, "please?")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(listed(&app, &bo, "status=rejected").await, std::slice::from_ref(&chat));
    assert_eq!(
        listed(&app, &ana, "status=rejected&direction=outgoing").await,
        std::slice::from_ref(&chat)
    );
    answer(&app, &bo, &chat, "accept")
        .await
        .assert_error(StatusCode::CONFLICT, "chat_request_answered");
}

async fn chat_requests_refuse_what_does_not_fit(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let carl = app.register_user("Carl").await;
    app.direct_conversation(&ana, &carl).await;
    let chat = request(&app, &ana, &bo).await.data(StatusCode::CREATED)["chatRequest"]["chatId"]
        .as_str()
        .unwrap()
        .to_string();

    request(&app, &ana, &carl)
        .await
        .assert_error(StatusCode::CONFLICT, "chat_exists");
    request(&app, &bo, &ana)
        .await
        .assert_error(StatusCode::CONFLICT, "chat_exists");
    request(&app, &ana, &ana)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let ghost = json!({"userId": uuid::Uuid::now_v7()});
    app.post("/api/v1/chat-request", Some(&ana.token), &ghost)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    answer(&app, &ana, &chat, "accept")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    answer(&app, &carl, &chat, "accept")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/chat-request?status=maybe", Some(&bo.token))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    app.get("/api/v1/chat-request?limit=0", Some(&bo.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn chat_request_lists_page_with_skip_and_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    let bo = app.register_user("Bo").await;
    let mut chats = Vec::new();
    for name in ["A", "B", "C"] {
        let from = app.register_user(name).await;
        let reply = request(&app, &from, &bo).await;
        chats.push(
            reply.data(StatusCode::CREATED)["chatRequest"]["chatId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    let first = listed(&app, &bo, "limit=2").await;
    let rest = listed(&app, &bo, "skip=2&limit=2").await;

    assert_eq!(first, [chats[2].clone(), chats[1].clone()], "newest first");
    assert_eq!(rest, [chats[0].clone()]);
}

async fn unread(app: &TestApp, user: &TestUser) -> serde_json::Value {
    let totals = app.get("/api/v1/message/totals", Some(&user.token)).await;
    totals.data(StatusCode::OK)["totalUnreadMessages"].clone()
}

/// Issue 9: a request's messages are not unread for its recipient until they accept
/// (`totalPendingRequest` counts the request itself), and a declined one never counts.
async fn unread_totals_never_count_pending_or_declined_requests(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );
    let chat_id = |reply: Reply| {
        reply.data(StatusCode::CREATED)["chatRequest"]["chatId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let to_accept = chat_id(request(&app, &ana, &bo).await);
    let to_decline = chat_id(request(&app, &cy, &bo).await);
    app.send_text(&ana, &to_accept, "hello from Ana").await;
    app.send_text(&cy, &to_decline, "hello from Cy").await;

    // Act
    let while_pending = unread(&app, &bo).await;
    answer(&app, &bo, &to_decline, "decline").await.data(StatusCode::OK);
    let after_decline = unread(&app, &bo).await;
    answer(&app, &bo, &to_accept, "accept").await.data(StatusCode::OK);
    let after_accept = unread(&app, &bo).await;

    // Assert
    assert_eq!(while_pending, 0);
    assert_eq!(after_decline, 0);
    assert_eq!(after_accept, 1, "accepted: Ana's message is unread now");
}

both_backends!(
    a_pending_request_waits_in_requests_until_accepted,
    a_declined_request_takes_no_more_messages,
    chat_requests_refuse_what_does_not_fit,
    chat_request_lists_page_with_skip_and_limit,
    unread_totals_never_count_pending_or_declined_requests,
);
