//! Organising the chat list: pin, archive, participants of several conversations, search by
//! name.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

fn ids(conversations: &Value) -> Vec<String> {
    conversations
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["_id"].as_str().unwrap().to_string())
        .collect()
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    ids(&app.list_conversations(&user.token, query).await.data(StatusCode::OK)["conversations"])
}

async fn toggle(app: &TestApp, user: &TestUser, conversation: &str, what: &str) -> crate::helpers::Reply {
    app.post(
        &format!("/api/v1/conversation/{conversation}/{what}"),
        Some(&user.token),
        &serde_json::json!({}),
    )
    .await
}

/// Ana with three direct conversations, oldest activity first.
async fn three_conversations(app: &TestApp) -> (TestUser, Vec<String>) {
    let ana = app.register_user("Ana").await;
    let mut conversations = Vec::new();
    for name in ["Bo", "Cy", "Di"] {
        let other = app.register_user(name).await;
        conversations.push(app.direct_conversation(&ana, &other).await);
    }
    (ana, conversations)
}

async fn a_pinned_conversation_sorts_first_until_unpinned(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, conversations) = three_conversations(&app).await;
    let oldest = &conversations[0];

    let pinned = toggle(&app, &ana, oldest, "pin").await;

    assert_eq!(pinned.data(StatusCode::OK)["pinned"], true);
    let order = list(&app, &ana, "").await;
    assert_eq!(
        order,
        [oldest.clone(), conversations[2].clone(), conversations[1].clone()]
    );
    let listed = app.get_conversation(&ana.token, oldest).await;
    assert_eq!(listed.data(StatusCode::OK)["conversation"]["pinned"], true);

    let unpinned = toggle(&app, &ana, oldest, "pin").await;
    assert_eq!(unpinned.data(StatusCode::OK)["pinned"], false);
    assert_eq!(
        list(&app, &ana, "").await,
        [conversations[2].clone(), conversations[1].clone(), oldest.clone()]
    );
}

async fn pins_are_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;

    toggle(&app, &ana, &conversation, "pin").await.data(StatusCode::OK);

    let for_bo = app.get_conversation(&bo.token, &conversation).await;
    assert_eq!(for_bo.data(StatusCode::OK)["conversation"]["pinned"], false);
}

async fn pages_walk_pinned_then_unpinned_conversations_each_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, conversations) = three_conversations(&app).await;
    toggle(&app, &ana, &conversations[0], "pin").await.data(StatusCode::OK);
    toggle(&app, &ana, &conversations[1], "pin").await.data(StatusCode::OK);

    let pages = app
        .walk_pages(&ana.token, "/api/v1/conversation", "conversations", 1)
        .await;

    let seen: Vec<String> = pages
        .iter()
        .flatten()
        .map(|c| c["_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen,
        [
            conversations[1].clone(),
            conversations[0].clone(),
            conversations[2].clone()
        ]
    );
}

async fn an_archived_conversation_leaves_the_list_and_stays_archived_on_new_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;

    let archived = toggle(&app, &ana, &conversation, "archive").await;

    assert_eq!(archived.data(StatusCode::OK)["archived"], true);
    assert!(list(&app, &ana, "").await.is_empty());
    assert_eq!(
        list(&app, &ana, "archived=true").await,
        std::slice::from_ref(&conversation)
    );
    app.send_message(&bo.token, &conversation, "still there?")
        .await
        .data(StatusCode::CREATED);
    assert!(list(&app, &ana, "").await.is_empty(), "a new message keeps it archived");
    assert_eq!(
        list(&app, &bo, "").await,
        std::slice::from_ref(&conversation),
        "archiving is Ana's alone"
    );

    toggle(&app, &ana, &conversation, "archive").await.data(StatusCode::OK);
    assert_eq!(list(&app, &ana, "").await, [conversation]);
}

async fn pin_and_archive_send_conversation_updated_to_the_callers_streams(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let mut other_device = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    toggle(&app, &ana, &conversation, "pin").await.data(StatusCode::OK);

    let updated = other_device.next_of("conversation.updated").await;
    assert_eq!(
        updated.data,
        serde_json::json!({"_id": conversation, "pinned": true, "archived": false, "muted": false, "mutedUntil": null}),
        "the flags only, not the conversation again (issue 9)"
    );
    bo_stream
        .assert_no("conversation.updated", std::time::Duration::from_millis(300))
        .await;
}

async fn pin_and_archive_are_refused_outside_the_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let carl = app.register_user("Carl").await;
    let conversation = app.direct_conversation(&ana, &bo).await;

    for what in ["pin", "archive"] {
        toggle(&app, &carl, &conversation, what)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        toggle(&app, &carl, &uuid::Uuid::now_v7().to_string(), what)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

async fn participants_of_several_conversations_ignore_the_callers_foreign_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let di = app.register_user("Di").await;
    let with_bo = app.direct_conversation(&ana, &bo).await;
    let group = app
        .create_group(&ana.token, "Trio", &[&bo.id, &cy.id])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign = app.direct_conversation(&cy, &di).await;

    let reply = app
        .get(
            &format!("/api/v1/conversation/participants?cids={with_bo},{group},{foreign}"),
            Some(&ana.token),
        )
        .await;

    let mut names: Vec<&str> = reply.data(StatusCode::OK)["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Ana", "Bo", "Cy"], "each user once, Di's conversation ignored");
    app.get("/api/v1/conversation/participants?cids=nope", Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn conversations_are_found_by_group_name_or_the_other_persons_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo Diddley").await;
    let cy = app.register_user("Cy").await;
    let with_bo = app.direct_conversation(&ana, &bo).await;
    let group = app
        .create_group(&ana.token, "Weekend Hikes", &[&cy.id])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let search = |name: &'static str| {
        let app = &app;
        let token = ana.token.clone();
        async move {
            ids(&app
                .get(&format!("/api/v1/conversation/search?name={name}"), Some(&token))
                .await
                .data(StatusCode::OK)["conversations"])
        }
    };

    assert_eq!(search("hike").await, std::slice::from_ref(&group));
    assert_eq!(search("DIDDLEY").await, std::slice::from_ref(&with_bo));
    assert!(search("ana").await.is_empty(), "the caller's own name matches nothing");
    assert!(search("zebra").await.is_empty());
    app.get("/api/v1/conversation/search?name=", Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

both_backends!(
    a_pinned_conversation_sorts_first_until_unpinned,
    pins_are_per_user,
    pages_walk_pinned_then_unpinned_conversations_each_once,
    an_archived_conversation_leaves_the_list_and_stays_archived_on_new_messages,
    pin_and_archive_send_conversation_updated_to_the_callers_streams,
    pin_and_archive_are_refused_outside_the_conversation,
    participants_of_several_conversations_ignore_the_callers_foreign_ones,
    conversations_are_found_by_group_name_or_the_other_persons_name,
);
