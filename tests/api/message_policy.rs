//! A user's message policy: with `requests`, nobody starts a chat with them or puts them in a
//! group without their consent. Direct conversations become chat requests, group additions
//! become invitations, and a declined invitation holds the pair like a declined request.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::chat_requests::answer;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app, spawn_app_with, text};
use crate::sse::Auth;

async fn set_policy(app: &TestApp, user: &TestUser, policy: &str) -> Reply {
    app.patch("/api/v1/user/me", Some(&user.token), &json!({"messagePolicy": policy}))
        .await
}

/// Registers `name` with the `requests` policy.
async fn asks_first(app: &TestApp, name: &str) -> TestUser {
    let user = app.register_user(name).await;
    set_policy(app, &user, "requests").await.data(StatusCode::OK);
    user
}

/// `(kind, chatId, status)` of each of the user's requests the query lists.
async fn requests(app: &TestApp, user: &TestUser, query: &str) -> Vec<(String, String, String)> {
    let reply = app
        .get(&format!("/api/v1/chat-request?{query}"), Some(&user.token))
        .await;
    reply.data(StatusCode::OK)["chatRequests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| {
            (
                text(&request["kind"]),
                text(&request["chatId"]),
                text(&request["status"]),
            )
        })
        .collect()
}

async fn participant_ids(app: &TestApp, user: &TestUser, group: &str) -> Vec<String> {
    let reply = app.get_conversation(&user.token, group).await;
    let mut ids: Vec<String> = reply.data(StatusCode::OK)["conversation"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| text(&user["_id"]))
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    ids.sort();
    ids
}

async fn the_own_profile_shows_and_changes_the_message_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let me = app.get_me(&ana.token).await;
    assert_eq!(me.data(StatusCode::OK)["user"]["messagePolicy"], "everyone");

    let changed = set_policy(&app, &ana, "requests").await;

    assert_eq!(changed.data(StatusCode::OK)["user"]["messagePolicy"], "requests");
    let me = app.get_me(&ana.token).await;
    assert_eq!(me.data(StatusCode::OK)["user"]["messagePolicy"], "requests");
    let seen = app.get_user(&bo.token, &ana.id).await;
    assert_eq!(
        seen.data(StatusCode::OK)["user"].get("messagePolicy"),
        None,
        "another user's setting is theirs"
    );
    let alias = app
        .patch(
            "/api/v1/user/me",
            Some(&ana.token),
            &json!({"message_policy": "everyone"}),
        )
        .await;
    assert_eq!(alias.data(StatusCode::OK)["user"]["messagePolicy"], "everyone");
    let untouched = app.patch("/api/v1/user/me", Some(&ana.token), &json!({})).await;
    assert_eq!(untouched.data(StatusCode::OK)["user"]["messagePolicy"], "everyone");
    set_policy(&app, &ana, "nobody")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let anonymous = app
        .patch("/api/v1/user/me", None, &json!({"messagePolicy": "requests"}))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

async fn post_conversation_to_a_requests_user_opens_a_chat_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let cal = app.register_user("Cal").await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let opened = app.create_direct(&ana.token, &bo.id).await;

    let conversation = opened.data(StatusCode::CREATED)["conversation"].clone();
    assert_eq!(conversation["requestStatus"], "pending");
    let chat = text(&conversation["_id"]);
    let event = bo_stream.next_of("chat_request.created").await;
    assert_eq!(
        (text(&event.data["kind"]), text(&event.data["chatId"])),
        ("direct".into(), chat.clone())
    );
    assert_eq!(
        requests(&app, &bo, "").await,
        [("direct".to_string(), chat.clone(), "pending".to_string())]
    );
    let again = app.create_direct(&ana.token, &bo.id).await;
    assert_eq!(
        text(&again.data(StatusCode::OK)["conversation"]["_id"]),
        chat,
        "one per pair"
    );
    app.send_text(&ana, &chat, "hello, may I ask you something?").await;
    let totals = app.get("/api/v1/message/totals", Some(&bo.token)).await;
    assert_eq!(totals.data(StatusCode::OK)["totalPendingRequest"], 1);
    app.send_message(&bo.token, &chat, "not before accepting")
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_pending");
    // Someone with the default policy is reached at once, as before.
    let open = app.create_direct(&ana.token, &cal.id).await;
    assert_ne!(
        open.data(StatusCode::CREATED)["conversation"]["requestStatus"],
        "pending"
    );
}

async fn adding_a_requests_user_to_a_group_invites_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let cal = app.register_user("Cal").await;
    let dee = app.register_user("Dee").await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut cal_stream = app.open_stream(Auth::Bearer(&cal.token), None).await;

    let created = app.create_group(&ana.token, "Trip", &[&bo.id, &cal.id]).await;

    let data = created.data(StatusCode::CREATED).clone();
    assert_eq!(data["invitedIds"], json!([bo.id]));
    let group = text(&data["conversation"]["_id"]);
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &cal.id]));
    let invitation = bo_stream.next_of("chat_request.created").await.data;
    assert_eq!(invitation["kind"], "group_invitation");
    assert_eq!(text(&invitation["chatId"]), group);
    assert_eq!(invitation["groupName"], "Trip");
    assert_eq!(invitation["requester"], json!({"_id": ana.id, "name": "Ana"}));
    let pending = ("group_invitation".to_string(), group.clone(), "pending".to_string());
    assert_eq!(requests(&app, &bo, "").await, std::slice::from_ref(&pending));
    assert_eq!(requests(&app, &ana, "direction=outgoing").await, [pending]);
    let totals = app.get("/api/v1/message/totals", Some(&bo.token)).await;
    assert_eq!(totals.data(StatusCode::OK)["totalPendingRequest"], 1);
    // Not a member yet: the group is closed to Bo, and its messages do not reach him.
    app.get_conversation(&bo.token, &group)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.send_message(&bo.token, &group, "let me in")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.send_text(&ana, &group, "before Bo joins").await;
    let dee_asks = app
        .post("/api/v1/chat-request", Some(&dee.token), &json!({"userId": bo.id}))
        .await;
    let dee_chat = text(&dee_asks.data(StatusCode::CREATED)["chatRequest"]["chatId"]);
    let meanwhile = bo_stream
        .next_until(|event| event.event == "chat_request.created" && text(&event.data["chatId"]) == dee_chat)
        .await;
    assert!(
        meanwhile.iter().all(|event| event.event != "message.created"),
        "{meanwhile:?}"
    );

    let accepted = answer(&app, &bo, &group, "accept").await;

    let accepted = accepted.data(StatusCode::OK)["chatRequest"].clone();
    assert_eq!(
        (accepted["kind"].clone(), accepted["status"].clone()),
        (json!("group_invitation"), json!("accepted"))
    );
    assert_eq!(
        participant_ids(&app, &ana, &group).await,
        sorted(&[&ana.id, &bo.id, &cal.id])
    );
    let joined = bo_stream.next_of("conversation.created").await.data;
    assert_eq!(text(&joined["_id"]), group);
    let updated = cal_stream.next_of("conversation.updated").await.data;
    assert_eq!(updated["addedIds"], json!([bo.id]));
    let told = cal_stream.next_of("message.created").await.data;
    assert_eq!(told["x"]["type"], "added_participant");
    assert_eq!(text(&told["x"]["user"]["_id"]), bo.id);
    app.send_text(&bo, &group, "thanks for the invite").await;
    assert_eq!(
        requests(&app, &bo, "").await,
        [("direct".to_string(), dee_chat, "pending".to_string())]
    );
    // Nothing is left to answer: Bo is a member.
    answer(&app, &bo, &group, "accept")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn a_declined_invitation_holds_the_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let cal = app.register_user("Cal").await;
    let group = app.group_conversation(&ana, "Book club", &[&cal]).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let add_bo = json!({"participants": {"add": [bo.id]}});
    let invited = app
        .patch(&format!("/api/v1/conversation/{group}"), Some(&ana.token), &add_bo)
        .await;
    assert_eq!(invited.data(StatusCode::OK)["invitedIds"], json!([bo.id]));
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &cal.id]));

    let declined = answer(&app, &bo, &group, "decline").await;

    assert_eq!(declined.data(StatusCode::OK)["chatRequest"]["status"], "declined");
    let event = ana_stream.next_of("chat_request.declined").await.data;
    assert_eq!(
        (event["kind"].clone(), text(&event["chatId"])),
        (json!("group_invitation"), group.clone())
    );
    assert_eq!(
        requests(&app, &bo, "status=rejected").await,
        [("group_invitation".to_string(), group.clone(), "declined".to_string())]
    );
    // Ana reaches Bo by no route within the cooldown.
    app.patch(&format!("/api/v1/conversation/{group}"), Some(&ana.token), &add_bo)
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    app.create_group(&ana.token, "Another", &[&bo.id])
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    app.post("/api/v1/chat-request", Some(&ana.token), &json!({"userId": bo.id}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    app.create_direct(&ana.token, &bo.id)
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
    // The hold is the pair's: Cal may still ask Bo.
    app.post("/api/v1/chat-request", Some(&cal.token), &json!({"userId": bo.id}))
        .await
        .data(StatusCode::CREATED);
    // A declined invitation is over: only a new one (after the cooldown) can be accepted.
    answer(&app, &bo, &group, "accept")
        .await
        .assert_error(StatusCode::CONFLICT, "chat_request_answered");
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &cal.id]));
}

async fn the_hold_outlives_the_group(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let created = app.create_group(&ana.token, "Just us", &[&bo.id]).await;
    let group = text(&created.data(StatusCode::CREATED)["conversation"]["_id"]);
    answer(&app, &bo, &group, "decline").await.data(StatusCode::OK);

    // Ana is its only member: leaving deletes the group, and with it the invitation.
    let left = app
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            None,
        )
        .await;
    assert_eq!(left.data(StatusCode::OK)["result"], "deleted");

    app.create_group(&ana.token, "Just us", &[&bo.id])
        .await
        .assert_error(StatusCode::FORBIDDEN, "chat_request_declined");
}

async fn an_invitee_added_outright_later_has_no_invitation_left(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let created = app.create_group(&ana.token, "Trip", &[&bo.id]).await;
    let group = text(&created.data(StatusCode::CREATED)["conversation"]["_id"]);
    set_policy(&app, &bo, "everyone").await.data(StatusCode::OK);

    let added = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"add": [bo.id]}}),
        )
        .await;

    assert_eq!(added.data(StatusCode::OK)["invitedIds"], json!([]));
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &bo.id]));
    assert_eq!(requests(&app, &bo, "").await, []);
    let totals = app.get("/api/v1/message/totals", Some(&bo.token)).await;
    assert_eq!(totals.data(StatusCode::OK)["totalPendingRequest"], 0);
    answer(&app, &bo, &group, "accept")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn after_the_cooldown_an_invitation_can_be_made_again(backend: Backend) {
    let app = spawn_app_with(backend, &[("CHAT_REQUEST_COOLDOWN_DAYS", "0")]).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let created = app.create_group(&ana.token, "Trip", &[&bo.id]).await;
    let group = text(&created.data(StatusCode::CREATED)["conversation"]["_id"]);
    answer(&app, &bo, &group, "decline").await.data(StatusCode::OK);

    let again = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"add": [bo.id]}}),
        )
        .await;

    assert_eq!(again.data(StatusCode::OK)["invitedIds"], json!([bo.id]));
    assert_eq!(
        requests(&app, &bo, "").await,
        [("group_invitation".to_string(), group, "pending".to_string())]
    );
}

async fn removing_an_invitee_withdraws_the_invitation(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let cal = app.register_user("Cal").await;
    let created = app.create_group(&ana.token, "Trip", &[&bo.id, &cal.id]).await;
    let group = text(&created.data(StatusCode::CREATED)["conversation"]["_id"]);
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let removed = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"remove": [bo.id]}}),
        )
        .await;

    removed.data(StatusCode::OK);
    let withdrawn = bo_stream.next_of("chat_request.withdrawn").await.data;
    assert_eq!(
        (text(&withdrawn["chatId"]), withdrawn["status"].clone()),
        (group.clone(), json!("withdrawn"))
    );
    assert_eq!(requests(&app, &bo, "").await, []);
    answer(&app, &bo, &group, "accept")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &cal.id]));
}

async fn invitations_take_seats_in_the_group(backend: Backend) {
    let app = spawn_app_with(backend, &[("GROUP_MAX_MEMBERS", "3")]).await;
    let ana = app.register_user("Ana").await;
    let bo = asks_first(&app, "Bo").await;
    let cal = app.register_user("Cal").await;
    let dee = app.register_user("Dee").await;
    let created = app.create_group(&ana.token, "Trio", &[&bo.id, &cal.id]).await;
    let group = text(&created.data(StatusCode::CREATED)["conversation"]["_id"]);

    let over = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"add": [dee.id]}}),
        )
        .await;

    over.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(participant_ids(&app, &ana, &group).await, sorted(&[&ana.id, &cal.id]));
    let accepted: Value = answer(&app, &bo, &group, "accept").await.data(StatusCode::OK).clone();
    assert_eq!(accepted["chatRequest"]["status"], "accepted");
}

both_backends!(
    the_own_profile_shows_and_changes_the_message_policy,
    post_conversation_to_a_requests_user_opens_a_chat_request,
    adding_a_requests_user_to_a_group_invites_them,
    a_declined_invitation_holds_the_pair,
    the_hold_outlives_the_group,
    an_invitee_added_outright_later_has_no_invitation_left,
    after_the_cooldown_an_invitation_can_be_made_again,
    removing_an_invitee_withdraws_the_invitation,
    invitations_take_seats_in_the_group,
);
