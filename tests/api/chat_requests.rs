//! Chat requests: a stranger's direct conversation waits until its recipient accepts.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app, spawn_app_with, text};
use crate::sse::Auth;

async fn request(app: &TestApp, from: &TestUser, to: &TestUser) -> Reply {
    app.post("/api/v1/chat-request", Some(&from.token), &json!({"userId": to.id}))
        .await
}

/// `user` answers chat request or invitation `chat`: `verb` is `accept` or `decline`.
pub(crate) async fn answer(app: &TestApp, user: &TestUser, chat: &str, verb: &str) -> Reply {
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
    early.assert_error(StatusCode::FORBIDDEN, "chat_request_pending");

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
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    assert_eq!(listed(&app, &bo, "status=rejected").await, std::slice::from_ref(&chat));
    assert_eq!(
        listed(&app, &ana, "status=rejected&direction=outgoing").await,
        std::slice::from_ref(&chat)
    );
    answer(&app, &bo, &chat, "decline")
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

/// Ana asks Bo, sends one message, and Bo declines: the chat id and Ana's message.
async fn declined_by_bo(app: &TestApp, ana: &TestUser, bo: &TestUser) -> (String, String) {
    let chat = text(&request(app, ana, bo).await.data(StatusCode::CREATED)["chatRequest"]["chatId"]);
    let message = app.send_text(ana, &chat, "hi, remember me?").await;
    answer(app, bo, &chat, "decline").await.data(StatusCode::OK);
    (chat, message)
}

async fn a_declined_requester_reaches_the_decliner_by_no_route(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo, carl) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Carl").await,
    );
    let (chat, message) = declined_by_bo(&app, &ana, &bo).await;
    let ana_and_carl = app.group_conversation(&ana, "Friends", &[&carl]).await;
    // Bo's stream resumes after the decline: what came before (on PostgreSQL an event reaches
    // streams once final, which can be after a stream opened) is not Ana's doing.
    let before = app
        .stored_events_once(&bo.token, |events| {
            events.iter().any(|event| event["event"] == "chat_request.declined")
        })
        .await;
    let declined_at = text(&before.last().expect("the decline")["id"]);
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), Some(&declined_at)).await;

    // Act: every way Ana could put something in front of Bo.
    let attempts = [
        ("send", app.send_message(&ana.token, &chat, "please?").await),
        (
            "edit",
            app.patch(
                &format!("/api/v1/message/{message}"),
                Some(&ana.token),
                &json!({"message": "please, please?"}),
            )
            .await,
        ),
        ("delete", app.delete_message(&ana, &message, "all").await),
        (
            "read",
            app.post(
                &format!("/api/v1/conversation/{chat}/read"),
                Some(&ana.token),
                &json!({}),
            )
            .await,
        ),
        (
            "typing",
            app.post(
                &format!("/api/v1/conversation/{chat}/typing"),
                Some(&ana.token),
                &json!({"typing": true}),
            )
            .await,
        ),
        ("request again", request(&app, &ana, &bo).await),
        ("open a conversation", app.create_direct(&ana.token, &bo.id).await),
        ("a group with Bo", app.create_group(&ana.token, "Lure", &[&bo.id]).await),
        (
            "add Bo to a group",
            app.patch(
                &format!("/api/v1/conversation/{ana_and_carl}"),
                Some(&ana.token),
                &json!({"participants": {"add": [bo.id]}}),
            )
            .await,
        ),
    ];

    // Assert: each refused with the same code; Bo's stream carries nothing of it, up to the
    // message Carl sends him afterwards.
    for (attempt, reply) in &attempts {
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{attempt}: {}", reply.body);
        reply.assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    }
    let carl_and_bo = app.direct_conversation(&carl, &bo).await;
    let from_carl = app.send_text(&carl, &carl_and_bo, "hello Bo").await;
    let seen = bo_stream
        .next_until(|event| event.event == "message.created" && event.data["_id"] == from_carl.as_str())
        .await;
    let from_ana: Vec<_> = seen
        .iter()
        .filter(|event| event.data.to_string().contains(&ana.id))
        .collect();
    assert!(from_ana.is_empty(), "{from_ana:?}");
    let history = app.list_messages(&bo.token, &chat, "").await;
    assert_eq!(
        history.data(StatusCode::OK)["messages"][0]["content"],
        "hi, remember me?"
    );
}

async fn the_decliner_can_write_later_and_that_reopens_the_chat(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let (chat, _) = declined_by_bo(&app, &ana, &bo).await;

    // Act
    let written = app.send_message(&bo.token, &chat, "sorry, I do remember").await;

    // Assert: the chat is an ordinary one again, both ways.
    written.data(StatusCode::CREATED);
    let answer = app.send_message(&ana.token, &chat, "great!").await;
    answer.data(StatusCode::CREATED);
    let conversation = app.get_conversation(&ana.token, &chat).await;
    assert_eq!(
        conversation.data(StatusCode::OK)["conversation"]["requestStatus"],
        "accepted"
    );
}

async fn the_decliner_can_accept_later(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let (chat, _) = declined_by_bo(&app, &ana, &bo).await;

    // Act
    let accepted = answer(&app, &bo, &chat, "accept").await;

    // Assert
    assert_eq!(accepted.data(StatusCode::OK)["chatRequest"]["status"], "accepted");
    app.send_message(&ana.token, &chat, "thanks!")
        .await
        .data(StatusCode::CREATED);
    answer(&app, &bo, &chat, "decline")
        .await
        .assert_error(StatusCode::CONFLICT, "chat_request_answered");
}

async fn a_pending_requester_sends_at_most_the_configured_messages(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("CHAT_REQUEST_MAX_MESSAGES", "2")]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = text(&request(&app, &ana, &bo).await.data(StatusCode::CREATED)["chatRequest"]["chatId"]);

    // Act
    let sends = [
        app.send_message(&ana.token, &chat, "one").await,
        app.send_message(&ana.token, &chat, "two").await,
        app.send_message(&ana.token, &chat, "three").await,
    ];

    // Assert: two go through, the third waits for Bo; once he accepts, no budget applies.
    sends[0].data(StatusCode::CREATED);
    sends[1].data(StatusCode::CREATED);
    sends[2].assert_error(StatusCode::FORBIDDEN, "chat_request_pending");
    answer(&app, &bo, &chat, "accept").await.data(StatusCode::OK);
    for text in ["three", "four"] {
        app.send_message(&ana.token, &chat, text)
            .await
            .data(StatusCode::CREATED);
    }
}

async fn after_the_cooldown_a_new_request_reopens_the_chat(backend: Backend) {
    // Arrange: a cooldown of 0 days has passed at once.
    let app = spawn_app_with(
        backend,
        &[("CHAT_REQUEST_COOLDOWN_DAYS", "0"), ("CHAT_REQUEST_MAX_MESSAGES", "1")],
    )
    .await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let (chat, _) = declined_by_bo(&app, &ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    // Act
    let again = request(&app, &ana, &bo).await;

    // Assert: the same chat, pending again, with a fresh budget; Bo hears of it.
    let again = again.data(StatusCode::CREATED)["chatRequest"].clone();
    assert_eq!(
        (text(&again["chatId"]), again["status"].clone()),
        (chat.clone(), json!("pending"))
    );
    assert_eq!(bo_stream.next_of("chat_request.created").await.data, again);
    app.send_message(&ana.token, &chat, "one more try")
        .await
        .data(StatusCode::CREATED);
    app.send_message(&ana.token, &chat, "and another")
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_pending");
}

both_backends!(
    a_declined_requester_reaches_the_decliner_by_no_route,
    the_decliner_can_write_later_and_that_reopens_the_chat,
    the_decliner_can_accept_later,
    a_pending_requester_sends_at_most_the_configured_messages,
    after_the_cooldown_a_new_request_reopens_the_chat,
    a_pending_request_waits_in_requests_until_accepted,
    a_declined_request_takes_no_more_messages,
    chat_requests_refuse_what_does_not_fit,
    chat_request_lists_page_with_skip_and_limit,
    unread_totals_never_count_pending_or_declined_requests,
);
