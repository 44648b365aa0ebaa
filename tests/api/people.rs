//! People (issue 11): blocking and its effects in every direction, presence by subscription
//! and the presence status, and account deletion.
//!
//! "Nothing arrives" is proved the way the rest of the suite proves it: something that must
//! arrive is made to happen afterwards, and the events read up to it hold nothing forbidden.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, TestUser, spawn_app, spawn_app_with, text};
use crate::sse::{Auth, EventStream, SseEvent};

async fn block(app: &TestApp, blocker: &TestUser, blocked: &[&TestUser]) -> Value {
    let ids: Vec<&str> = blocked.iter().map(|user| user.id.as_str()).collect();
    app.post("/api/v1/user/block", Some(&blocker.token), &json!({ "ids": ids }))
        .await
        .data(StatusCode::OK)
        .clone()
}

async fn unblock(app: &TestApp, blocker: &TestUser, blocked: &TestUser) {
    app.post(
        "/api/v1/user/unblock",
        Some(&blocker.token),
        &json!({ "ids": [blocked.id] }),
    )
    .await
    .data(StatusCode::OK);
}

/// The texts of the caller's messages in `conversation`, oldest first.
async fn texts(app: &TestApp, user: &TestUser, conversation: &str) -> Vec<String> {
    let reply = app.list_messages(&user.token, conversation, "").await;
    let mut texts: Vec<String> = reply.data(StatusCode::OK)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| text(&message["content"]))
        .collect();
    texts.sort();
    texts
}

/// Matches a `presence` event about `user`.
fn presence_of(user: &TestUser) -> impl Fn(&SseEvent) -> bool + use<> {
    let id = user.id.clone();
    move |event: &SseEvent| event.event == "presence" && event.data["userId"] == id
}

/// The events of `stream` up to a `message.created` whose content is `marker`.
async fn events_until_message(stream: &mut EventStream, marker: &str) -> Vec<SseEvent> {
    stream
        .next_until(|event| event.event == "message.created" && event.data["content"] == marker)
        .await
}

fn kinds(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(|event| event.event.clone()).collect()
}

/// The caller's entry for `conversation` in their conversation list.
async fn listed(app: &TestApp, user: &TestUser, conversation: &str) -> Value {
    let reply = app.list_conversations(&user.token, "").await;
    reply.data(StatusCode::OK)["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["_id"] == conversation)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `viewer` sees `user` offline (their streams' closing noticed).
pub(crate) async fn wait_until_offline(app: &TestApp, viewer: &TestUser, user: &TestUser) {
    for _ in 0..200 {
        let reply = app
            .get(
                &format!("/api/v1/user/last-activity?ids={}", user.id),
                Some(&viewer.token),
            )
            .await;
        if reply.data(StatusCode::OK)["lastActivity"][&user.id] != "online" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{} still online", user.name);
}

async fn a_blocked_users_direct_messages_never_reach_the_blocker(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let with_bo = app.direct_conversation(&ana, &bo).await;
    let with_cy = app.direct_conversation(&ana, &cy).await;
    app.send_text(&bo, &with_bo, "before the block").await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let blocked = block(&app, &ana, &[&bo]).await;
    assert_eq!(blocked["ids"], json!([bo.id]));
    assert_eq!(ana_stream.next_of("user.blocked").await.data["userIds"], json!([bo.id]));

    // Bo is not told: his send is accepted and shown to him as sent.
    let reply = app.send_message(&bo.token, &with_bo, "withheld pizza").await;
    let sent = reply.data(StatusCode::CREATED)["message"].clone();
    assert_eq!(sent["content"], "withheld pizza");
    // (A stream opened "from now" on PostgreSQL may first repeat a few events just before.)
    events_until_message(&mut bo_stream, "withheld pizza").await;
    assert_eq!(texts(&app, &bo, &with_bo).await, ["before the block", "withheld pizza"]);

    // Ana gets nothing of it: not live, not in lists, counts or search.
    app.send_text(&cy, &with_cy, "marker from Cy").await;
    let seen = events_until_message(&mut ana_stream, "marker from Cy").await;
    assert!(
        !seen.iter().any(|event| event.data.to_string().contains("withheld")),
        "nothing withheld reaches Ana: {:?}",
        kinds(&seen)
    );
    assert_eq!(texts(&app, &ana, &with_bo).await, ["before the block"]);
    let entry = listed(&app, &ana, &with_bo).await;
    assert_eq!(entry["lastMessage"], "before the block", "{entry}");
    assert_eq!(
        entry["unreadCount"], 1,
        "only the message from before the block: {entry}"
    );
    let found = app.get("/api/v1/message/search?q=pizza", Some(&ana.token)).await;
    assert_eq!(found.data(StatusCode::OK)["messages"], json!([]));
    // Nor can she reach it by its id.
    app.post(
        &format!("/api/v1/message/{}/star", text(&sent["_id"])),
        Some(&ana.token),
        &json!({}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Ana reads the conversation: the receipt does not reach Bo, not even through a list,
    // and does not name the withheld message.
    let read = app
        .post(
            &format!("/api/v1/conversation/{with_bo}/read"),
            Some(&ana.token),
            &json!({}),
        )
        .await;
    assert!(
        !read.data(StatusCode::OK).to_string().contains(&text(&sent["_id"])),
        "{}",
        read.body
    );
    let bo_view = app.list_messages(&bo.token, &with_bo, "").await;
    let bo_view = bo_view.data(StatusCode::OK)["messages"].clone();
    assert!(
        bo_view
            .as_array()
            .unwrap()
            .iter()
            .all(|message| message["status"] != "read"),
        "no read receipts across a block: {bo_view}"
    );
    // Deleting for everyone tells Ana only of what she saw.
    let visible = app.send_text(&ana, &with_bo, "Ana writes").await;
    let own_withheld = app.send_text(&bo, &with_bo, "another withheld one").await;
    app.post(
        "/api/v1/message/delete",
        Some(&ana.token),
        &json!({"convo_id": with_bo, "ids": [visible], "scope": "all"}),
    )
    .await
    .data(StatusCode::OK);
    let both = app
        .post(
            "/api/v1/message/delete",
            Some(&bo.token),
            &json!({"convo_id": with_bo, "ids": [own_withheld, text(&sent["_id"])], "scope": "all"}),
        )
        .await;
    both.data(StatusCode::OK);
    app.send_text(&cy, &with_cy, "second marker").await;
    let seen = events_until_message(&mut ana_stream, "second marker").await;
    assert!(
        !seen.iter().any(|event| event.data.to_string().contains(&own_withheld)
            || event.data.to_string().contains(text(&sent["_id"]).as_str())),
        "{seen:?}"
    );

    // Unblocked: what comes now arrives; the withheld message never appears.
    unblock(&app, &ana, &bo).await;
    app.post(
        &format!("/api/v1/message/{}/star", text(&sent["_id"])),
        Some(&ana.token),
        &json!({}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        ana_stream.next_of("user.unblocked").await.data["userIds"],
        json!([bo.id])
    );
    app.send_text(&bo, &with_bo, "after the unblock").await;
    let seen = events_until_message(&mut ana_stream, "after the unblock").await;
    assert!(!seen.iter().any(|event| event.data.to_string().contains("withheld")));
    assert_eq!(
        texts(&app, &ana, &with_bo).await,
        ["", "after the unblock", "before the block"],
        "her own message is a tombstone now"
    );
}

async fn a_blocked_users_requests_and_invitations_stay_pending_and_never_reach_the_blocker(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let with_cy = app.direct_conversation(&ana, &cy).await;
    block(&app, &ana, &[&bo]).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    // A new conversation looks to Bo like a request Ana has not answered.
    let reply = app.create_direct(&bo.token, &ana.id).await;
    let conversation = reply.data(StatusCode::CREATED)["conversation"].clone();
    assert_eq!(conversation["requestStatus"], "pending");
    let chat = text(&conversation["_id"]);
    app.send_message(&bo.token, &chat, "hello from a request")
        .await
        .data(StatusCode::CREATED);
    // A group invitation too: Ana is listed as invited, and never told.
    let reply = app.create_group(&bo.token, "Bo's party", &[&ana.id, &cy.id]).await;
    let created = reply.data(StatusCode::CREATED).clone();
    assert_eq!(created["invitedIds"], json!([ana.id]), "{created}");
    let group = created["conversation"].clone();
    let outgoing = app
        .get("/api/v1/chat-request?direction=outgoing", Some(&bo.token))
        .await;
    let outgoing = outgoing.data(StatusCode::OK)["chatRequests"].clone();
    assert_eq!(
        outgoing.as_array().unwrap().len(),
        2,
        "both look pending to Bo: {outgoing}"
    );

    app.send_text(&cy, &with_cy, "marker from Cy").await;
    let seen = events_until_message(&mut ana_stream, "marker from Cy").await;
    assert!(
        !seen.iter().any(|event| event.event.starts_with("chat_request")
            || event.data.to_string().contains("Bo's party")
            || event.data.to_string().contains("hello from a request")),
        "{:?}",
        kinds(&seen)
    );
    let incoming = app.get("/api/v1/chat-request", Some(&ana.token)).await;
    assert_eq!(incoming.data(StatusCode::OK)["chatRequests"], json!([]));
    let searched = app.get("/api/v1/conversation/search?name=Bo", Some(&ana.token)).await;
    assert!(!searched.body.to_string().contains(&chat), "{}", searched.body);
    app.get_conversation(&ana.token, &chat)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get_conversation(&ana.token, &text(&group["_id"]))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    // Not after an unblock either: what was made meanwhile stays out of reach.
    unblock(&app, &ana, &bo).await;
    let incoming = app.get("/api/v1/chat-request", Some(&ana.token)).await;
    assert_eq!(incoming.data(StatusCode::OK)["chatRequests"], json!([]));
    let totals = app.get("/api/v1/message/totals", Some(&ana.token)).await;
    assert_eq!(totals.data(StatusCode::OK)["totalPendingRequest"], 0, "{}", totals.body);
    // If Ana opens the conversation herself, it is hers from then on, without Bo's old words.
    let reply = app.create_direct(&ana.token, &bo.id).await;
    assert_eq!(text(&reply.data(StatusCode::OK)["conversation"]["_id"]), chat);
    assert_eq!(texts(&app, &ana, &chat).await, Vec::<String>::new());
}

async fn a_block_cuts_presence_typing_receipts_and_search_both_ways(backend: Backend) {
    let app = spawn_app_with(backend, &[("PRESENCE_DEBOUNCE_MS", "0")]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let with_bo = app.direct_conversation(&ana, &bo).await;
    let with_cy = app.direct_conversation(&ana, &cy).await;
    let bo_and_cy = app.direct_conversation(&bo, &cy).await;
    let group = app.group_conversation(&ana, "Both of them", &[&bo, &cy]).await;
    app.send_text(&ana, &with_bo, "hi Bo").await;
    block(&app, &ana, &[&bo]).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let _cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;

    // Presence: Bo's coming online does not reach Ana; Cy's does.
    let seen = ana_stream
        .next_until(|event| event.event == "presence" && event.data["userId"] == cy.id)
        .await;
    assert!(
        !seen
            .iter()
            .any(|event| event.event == "presence" && event.data["userId"] == bo.id),
        "{seen:?}"
    );
    // Typing, in their direct conversation and in a group, goes neither way.
    for conversation in [&with_bo, &group] {
        app.post(
            &format!("/api/v1/conversation/{conversation}/typing"),
            Some(&bo.token),
            &json!({"typing": true}),
        )
        .await
        .data(StatusCode::OK);
    }
    app.post(
        &format!("/api/v1/conversation/{with_cy}/typing"),
        Some(&cy.token),
        &json!({"typing": true}),
    )
    .await
    .data(StatusCode::OK);
    let seen = ana_stream
        .next_until(|event| event.event == "typing" && event.data["userId"] == cy.id)
        .await;
    assert!(!seen.iter().any(|event| event.data["userId"] == bo.id), "{seen:?}");
    // Bo does not learn that Ana read his conversation.
    app.post(
        &format!("/api/v1/conversation/{with_bo}/read"),
        Some(&ana.token),
        &json!({}),
    )
    .await;
    app.send_text(&cy, &bo_and_cy, "marker for Bo").await;
    let seen = events_until_message(&mut bo_stream, "marker for Bo").await;
    assert!(
        !seen
            .iter()
            .any(|event| event.event == "message.read" || (event.event == "presence" && event.data["userId"] == ana.id)),
        "{seen:?}"
    );
    // Neither finds the other, nor sees their last activity.
    let found = app.search_users(&bo.token, "keyword=Ana").await;
    assert_eq!(found.data(StatusCode::OK)["users"], json!([]));
    let found = app.search_users(&ana.token, "keyword=Bo").await;
    assert_eq!(found.data(StatusCode::OK)["users"], json!([]));
    let activity = app
        .get(&format!("/api/v1/user/last-activity?ids={}", ana.id), Some(&bo.token))
        .await;
    assert_eq!(activity.data(StatusCode::OK)["lastActivity"][&ana.id], Value::Null);
    // In the group both stay members and see each other's messages.
    app.send_text(&bo, &group, "Bo in the group").await;
    assert_eq!(
        events_until_message(&mut ana_stream, "Bo in the group")
            .await
            .last()
            .unwrap()
            .data["sender"]["_id"],
        bo.id
    );
}

async fn blocking_refuses_bad_lists_and_lists_the_blocked(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for body in [
        json!({"ids": []}),
        json!({"ids": too_many}),
        json!({"ids": [ana.id]}),
        json!({}),
    ] {
        let reply = app.post("/api/v1/user/block", Some(&ana.token), &body).await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {} {}",
            reply.status,
            reply.body
        );
    }
    app.post("/api/v1/user/block", None, &json!({"ids": [bo.id]}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");

    let unknown = uuid::Uuid::now_v7().to_string();
    let reply = app
        .post(
            "/api/v1/user/block",
            Some(&ana.token),
            &json!({"ids": [bo.id, unknown]}),
        )
        .await;
    assert_eq!(
        reply.data(StatusCode::OK)["ids"],
        json!([bo.id]),
        "unknown ids are left out"
    );
    let again = block(&app, &ana, &[&bo, &cy]).await;
    assert_eq!(again["ids"], json!([cy.id]), "blocking twice changes nothing");
    let listed = app.get("/api/v1/user/blocked", Some(&ana.token)).await;
    let users = listed.data(StatusCode::OK)["users"].clone();
    let ids: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|user| text(&user["_id"]))
        .collect();
    assert_eq!(ids, [cy.id.clone(), bo.id.clone()], "most recent first");
    assert!(users[0]["blockedAt"].is_string());
    assert!(users[0].get("email").is_none(), "a public profile: {}", users[0]);
    let reply = app
        .post(
            "/api/v1/user/unblock",
            Some(&ana.token),
            &json!({"ids": [bo.id, bo.id]}),
        )
        .await;
    assert_eq!(reply.data(StatusCode::OK)["ids"], json!([bo.id]));
    let listed = app.get("/api/v1/user/blocked", Some(&bo.token)).await;
    assert_eq!(listed.data(StatusCode::OK)["users"], json!([]), "only one's own blocks");
}

async fn presence_reaches_small_groups_unasked_and_large_ones_by_subscription(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[
            ("PRESENCE_GROUP_MAX_MEMBERS", "2"),
            ("PRESENCE_DEBOUNCE_MS", "0"),
            // A closed connection shows when a write to it fails: the keep-alive.
            ("SSE_KEEP_ALIVE_SECONDS", "1"),
        ],
    )
    .await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let dan = app.register_user("Dan").await;
    let stranger = app.register_user("Stranger").await;
    app.group_conversation(&ana, "Three is a crowd", &[&bo, &cy]).await;
    app.direct_conversation(&ana, &dan).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let stream_id = ana_stream.stream_id().await;

    // Bo is only in the large group with Ana: not told unasked. Dan, a direct partner, is.
    let _bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let _dan_stream = app.open_stream(Auth::Bearer(&dan.token), None).await;
    let seen = ana_stream.next_until(presence_of(&dan)).await;
    assert!(!seen.iter().any(presence_of(&bo)), "{seen:?}");

    let reply = app
        .post(
            "/api/v1/user/last-activity/subscribe",
            Some(&ana.token),
            &json!({"streamId": stream_id, "ids": [bo.id, cy.id, stranger.id]}),
        )
        .await;
    let activity = reply.data(StatusCode::OK)["lastActivity"].clone();
    assert_eq!(activity[&bo.id], "online", "{activity}");
    assert_eq!(activity[&cy.id], Value::Null, "never seen");
    assert_eq!(activity[&stranger.id], Value::Null, "not one Ana may see");

    // Subscribed: Cy's presence now arrives; the stranger's does not.
    let stranger_stream = app.open_stream(Auth::Bearer(&stranger.token), None).await;
    let cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;
    let seen = ana_stream.next_until(presence_of(&cy)).await;
    assert_eq!(seen.last().unwrap().data["status"], "online");
    assert!(!seen.iter().any(presence_of(&stranger)), "{seen:?}");
    drop(stranger_stream);

    // Unsubscribed from Cy: Cy going offline is not told, Bo going offline is.
    app.post(
        "/api/v1/user/last-activity/unsubscribe",
        Some(&ana.token),
        &json!({"streamId": stream_id, "ids": [cy.id]}),
    )
    .await
    .data(StatusCode::OK);
    drop(cy_stream);
    wait_until_offline(&app, &ana, &cy).await;
    drop(_bo_stream);
    let seen = ana_stream.next_until(presence_of(&bo)).await;
    assert_eq!(seen.last().unwrap().data["status"], "offline");
    assert!(!seen.iter().any(presence_of(&cy)), "{seen:?}");
}

async fn a_subscription_shows_nothing_once_the_shared_conversation_is_left(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("PRESENCE_GROUP_MAX_MEMBERS", "2"), ("PRESENCE_DEBOUNCE_MS", "0")],
    )
    .await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let dan = app.register_user("Dan").await;
    let group = app.group_conversation(&ana, "Crowd", &[&bo, &cy]).await;
    app.direct_conversation(&ana, &dan).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let stream_id = ana_stream.stream_id().await;
    app.post(
        "/api/v1/user/last-activity/subscribe",
        Some(&ana.token),
        &json!({"streamId": stream_id, "ids": [bo.id, cy.id]}),
    )
    .await
    .data(StatusCode::OK);
    let _cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;
    ana_stream.next_until(presence_of(&cy)).await;

    // Bo leaves the group: his presence no longer reaches Ana's subscribed stream.
    app.call(
        reqwest::Method::DELETE,
        &format!("/api/v1/conversation/{group}"),
        Some(&bo.token),
        None,
    )
    .await
    .data(StatusCode::OK);
    let _bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let _dan_stream = app.open_stream(Auth::Bearer(&dan.token), None).await;
    let seen = ana_stream.next_until(presence_of(&dan)).await;
    assert!(!seen.iter().any(presence_of(&bo)), "{seen:?}");
}

async fn subscriptions_name_only_the_callers_open_streams_and_are_bounded(backend: Backend) {
    let app = spawn_app_with(backend, &[("SSE_KEEP_ALIVE_SECONDS", "1")]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    app.direct_conversation(&ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let bo_stream_id = bo_stream.stream_id().await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let ana_stream_id = ana_stream.stream_id().await;
    let subscribe = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post("/api/v1/user/last-activity/subscribe", Some(&token), &body)
                .await
        }
    };

    for stream in [bo_stream_id.clone(), uuid::Uuid::now_v7().to_string()] {
        subscribe(ana.token.clone(), json!({"streamId": stream, "ids": [bo.id]}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    let too_many: Vec<String> = (0..501).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for ids in [json!([]), json!(too_many)] {
        let reply = subscribe(ana.token.clone(), json!({"streamId": ana_stream_id, "ids": ids})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    }
    subscribe(ana.token.clone(), json!({"stream_id": ana_stream_id, "ids": [bo.id]}))
        .await
        .data(StatusCode::OK);

    // A closed stream's subscriptions go with it.
    drop(ana_stream);
    let mut gone = false;
    for _ in 0..100 {
        let reply = subscribe(ana.token.clone(), json!({"streamId": ana_stream_id, "ids": [bo.id]})).await;
        if reply.status == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "a closed stream can no longer be subscribed");
    drop(bo_stream);
}

async fn an_offline_status_hides_a_connected_user(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("PRESENCE_DEBOUNCE_MS", "0"), ("SSE_KEEP_ALIVE_SECONDS", "1")],
    )
    .await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    app.direct_conversation(&ana, &bo).await;
    app.direct_conversation(&ana, &cy).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    assert_eq!(
        ana_stream.next_until(presence_of(&bo)).await.last().unwrap().data["status"],
        "online"
    );
    let set = |status: &'static str| {
        let app = &app;
        let token = bo.token.clone();
        async move {
            app.post("/api/v1/user/me/status", Some(&token), &json!({ "status": status }))
                .await
        }
    };

    let reply = set("offline").await;
    assert_eq!(reply.data(StatusCode::OK)["user"]["presenceStatus"], "offline");
    assert_eq!(
        ana_stream.next_until(presence_of(&bo)).await.last().unwrap().data["status"],
        "offline"
    );
    assert_eq!(
        bo_stream.next_of("user.updated").await.data["user"]["presenceStatus"],
        "offline"
    );
    let activity = app
        .get(&format!("/api/v1/user/last-activity?ids={}", bo.id), Some(&ana.token))
        .await;
    assert!(activity.data(StatusCode::OK)["lastActivity"][&bo.id].is_number());

    set("auto").await.data(StatusCode::OK);
    assert_eq!(
        ana_stream.next_until(presence_of(&bo)).await.last().unwrap().data["status"],
        "online"
    );

    // `online` holds with no stream open: Bo's leaving is not announced, Cy's coming is.
    set("online").await.data(StatusCode::OK);
    drop(bo_stream);
    // Long enough for the closed stream to be noticed (keep-alive 1 s) and presence applied.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;
    let seen = ana_stream.next_until(presence_of(&cy)).await;
    assert!(!seen.iter().any(presence_of(&bo)), "{seen:?}");
    let activity = app
        .get(&format!("/api/v1/user/last-activity?ids={}", bo.id), Some(&ana.token))
        .await;
    assert_eq!(activity.data(StatusCode::OK)["lastActivity"][&bo.id], "online");
    drop(cy_stream);

    for body in [json!({"status": "busy"}), json!({})] {
        let reply = app.post("/api/v1/user/me/status", Some(&bo.token), &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
    }
}

async fn a_deleted_account_ends_its_sessions_frees_its_email_and_shows_as_deleted_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    app.patch(
        "/api/v1/user/me",
        Some(&ana.token),
        &json!({"phone": "+351 912 345 678"}),
    )
    .await
    .data(StatusCode::OK);
    let direct = app.direct_conversation(&ana, &bo).await;
    let group = app.group_conversation(&ana, "Ana's group", &[&bo, &cy]).await;
    app.send_text(&ana, &direct, "words that stay").await;
    block(&app, &ana, &[&cy]).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let delete = |password: &'static str| {
        let app = &app;
        let token = ana.token.clone();
        async move {
            app.call(
                reqwest::Method::DELETE,
                "/api/v1/user/me",
                Some(&token),
                Some(&json!({ "password": password })),
            )
            .await
        }
    };
    delete("not her password")
        .await
        .assert_error(StatusCode::FORBIDDEN, "invalid_credentials");
    app.get_me(&ana.token).await.data(StatusCode::OK);

    let reply = delete(PASSWORD).await;
    assert_eq!(reply.data(StatusCode::OK)["deleted"], true);
    assert!(ana_stream.ends_within(std::time::Duration::from_secs(10)).await);
    app.get_me(&ana.token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.login(&ana.email, PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Her partners see "Deleted user", with no profile; her words stay.
    let told = bo_stream.next_of("user.updated").await.data;
    assert_eq!(
        (told["user"]["name"].clone(), told["user"]["deleted"].clone()),
        (json!("Deleted user"), json!(true))
    );
    let conversation = app.get_conversation(&bo.token, &direct).await;
    let participants = conversation.data(StatusCode::OK)["conversation"]["participants"].clone();
    let her = participants
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["_id"] == ana.id)
        .cloned()
        .unwrap();
    assert_eq!(
        (her["name"].clone(), her["about"].clone()),
        (json!("Deleted user"), json!(""))
    );
    assert_eq!(texts(&app, &bo, &direct).await, ["words that stay"]);
    app.get_user(&bo.token, &ana.id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let found = app.search_users(&bo.token, "keyword=Ana").await;
    assert_eq!(found.data(StatusCode::OK)["users"], json!([]));
    // She left her group, which passed to Bo.
    let group_now = app.get_conversation(&bo.token, &group).await;
    let group_now = group_now.data(StatusCode::OK)["conversation"].clone();
    assert_eq!(group_now["owner"], bo.id);
    assert!(!group_now["participants"].to_string().contains(&ana.id));
    // Her email and phone are free.
    let again = app.register("Ana again", &ana.email, PASSWORD).await;
    let token = text(&again.data(StatusCode::CREATED)["token"]);
    app.patch("/api/v1/user/me", Some(&token), &json!({"phone": "+351912345678"}))
        .await
        .data(StatusCode::OK);
    // Her block went with her.
    let listed = app.get("/api/v1/user/blocked", Some(&cy.token)).await;
    assert_eq!(listed.data(StatusCode::OK)["users"], json!([]));
    let reply = app.create_direct(&cy.token, &ana.id).await;
    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn deleting_an_account_with_its_messages_tombstones_them_for_everyone(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let direct = app.direct_conversation(&ana, &bo).await;
    let group = app.group_conversation(&bo, "Bo's group", &[&ana]).await;
    for index in 0..3 {
        app.send_text(&ana, &direct, &format!("secret {index}")).await;
    }
    app.send_text(&ana, &group, "secret in the group").await;
    app.send_text(&bo, &direct, "Bo's own words").await;

    let reply = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/user/me",
            Some(&ana.token),
            Some(&json!({ "password": PASSWORD, "deleteMessages": true })),
        )
        .await;
    assert_eq!(reply.data(StatusCode::OK)["deletedMessages"], 4, "{}", reply.body);

    for conversation in [&direct, &group] {
        let shown = texts(&app, &bo, conversation).await;
        assert!(!shown.iter().any(|shown| shown.contains("secret")), "{shown:?}");
    }
    assert!(texts(&app, &bo, &direct).await.contains(&"Bo's own words".to_string()));
    let found = app.get("/api/v1/message/search?q=secret", Some(&bo.token)).await;
    assert_eq!(found.data(StatusCode::OK)["messages"], json!([]));
    let (events, _) = app.stored_events(&bo.token).await;
    assert!(
        !events.iter().any(|event| event.to_string().contains("secret")),
        "the log keeps no copy of the text"
    );
    let missing = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/user/me",
            Some(&bo.token),
            Some(&json!({})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", missing.body);
}

both_backends!(
    a_blocked_users_direct_messages_never_reach_the_blocker,
    a_blocked_users_requests_and_invitations_stay_pending_and_never_reach_the_blocker,
    a_block_cuts_presence_typing_receipts_and_search_both_ways,
    blocking_refuses_bad_lists_and_lists_the_blocked,
    presence_reaches_small_groups_unasked_and_large_ones_by_subscription,
    subscriptions_name_only_the_callers_open_streams_and_are_bounded,
    a_subscription_shows_nothing_once_the_shared_conversation_is_left,
    an_offline_status_hides_a_connected_user,
    a_deleted_account_ends_its_sessions_frees_its_email_and_shows_as_deleted_user,
    deleting_an_account_with_its_messages_tombstones_them_for_everyone,
);
