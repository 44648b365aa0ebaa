//! Group administration: rename, members, system messages, leaving, ownership.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app};
use crate::sse::Auth;

async fn group(app: &TestApp, owner: &TestUser, members: &[&TestUser]) -> String {
    let ids: Vec<&str> = members.iter().map(|member| member.id.as_str()).collect();
    let reply = app.create_group(&owner.token, "Club", &ids).await;
    reply.data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn patch(app: &TestApp, user: &TestUser, conversation: &str, body: Value) -> Reply {
    app.patch(
        &format!("/api/v1/conversation/{conversation}"),
        Some(&user.token),
        &body,
    )
    .await
}

async fn leave(app: &TestApp, user: &TestUser, conversation: &str) -> Reply {
    let request = app
        .client
        .delete(app.url(&format!("/api/v1/conversation/{conversation}")))
        .bearer_auth(&user.token);
    Reply::read(request.send().await.unwrap()).await
}

fn names(conversation: &Value) -> Vec<String> {
    let mut names: Vec<String> = conversation["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().into())
        .collect();
    names.sort();
    names
}

async fn any_member_renames_the_group_and_everyone_hears_of_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = group(&app, &ana, &[&bo]).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let reply = patch(
        &app,
        &bo,
        &conversation,
        json!({"name": "Book Club", "description": "Thursdays"}),
    )
    .await;

    let updated = reply.data(StatusCode::OK)["conversation"].clone();
    assert_eq!(
        (updated["name"].as_str(), updated["description"].as_str()),
        (Some("Book Club"), Some("Thursdays"))
    );
    let event = ana_stream.next_of("conversation.updated").await;
    assert_eq!(event.data["name"], "Book Club");
}

async fn the_owner_may_keep_renaming_to_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = group(&app, &ana, &[&bo]).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    patch(&app, &bo, &conversation, json!({"onlyOwnerCanRename": true}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let locked = patch(&app, &ana, &conversation, json!({"onlyOwnerCanRename": true})).await;
    assert_eq!(locked.data(StatusCode::OK)["conversation"]["onlyOwnerCanRename"], true);
    assert_eq!(
        bo_stream.next_of("conversation.updated").await.data["onlyOwnerCanRename"],
        true
    );
    for change in [json!({"name": "Bo's club"}), json!({"description": "mine"})] {
        patch(&app, &bo, &conversation, change)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    let renamed = patch(&app, &ana, &conversation, json!({"name": "Ana's club"})).await;
    assert_eq!(renamed.data(StatusCode::OK)["conversation"]["name"], "Ana's club");

    patch(&app, &ana, &conversation, json!({"onlyOwnerCanRename": false}))
        .await
        .data(StatusCode::OK);
    let by_bo = patch(&app, &bo, &conversation, json!({"name": "Everyone's club"})).await;
    assert_eq!(by_bo.data(StatusCode::OK)["conversation"]["name"], "Everyone's club");
}

async fn the_owner_adds_and_removes_members_with_system_messages_and_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let (cy, di) = (app.register_user("Cy").await, app.register_user("Di").await);
    let conversation = group(&app, &ana, &[&bo, &cy]).await;
    let mut cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;
    let mut di_stream = app.open_stream(Auth::Bearer(&di.token), None).await;

    let reply = patch(
        &app,
        &ana,
        &conversation,
        json!({"participants": {"add": [di.id], "remove": [cy.id]}}),
    )
    .await;

    assert_eq!(names(&reply.data(StatusCode::OK)["conversation"]), ["Ana", "Bo", "Di"]);
    assert_eq!(
        di_stream.next_of("conversation.created").await.data["_id"],
        conversation.as_str()
    );
    assert_eq!(
        cy_stream.next_of("conversation.removed").await.data,
        json!({"conversationId": conversation})
    );
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    let system: Vec<(String, Value)> = listed.data(StatusCode::OK)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["content"].as_str().unwrap().to_string(), m["x"].clone()))
        .collect();
    assert_eq!(
        system,
        [
            (
                "Cy was removed from the group".to_string(),
                json!({"type": "removed_participant", "user": {"_id": cy.id, "name": "Cy"}})
            ),
            (
                "Di was added to the group".to_string(),
                json!({"type": "added_participant", "user": {"_id": di.id, "name": "Di"}})
            ),
        ]
    );
    app.get_conversation(&cy.token, &conversation)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn group_changes_are_refused_when_they_do_not_fit(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );
    let conversation = group(&app, &ana, &[&bo]).await;
    let direct = app.direct_conversation(&ana, &cy).await;

    let by_member = patch(&app, &bo, &conversation, json!({"participants": {"add": [cy.id]}})).await;
    by_member.assert_error(StatusCode::FORBIDDEN, "forbidden");
    patch(&app, &cy, &conversation, json!({"name": "Mine"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"participants": {"add": [uuid::Uuid::now_v7()]}}),
        json!({"participants": {"remove": [ana.id]}}),
    ] {
        patch(&app, &ana, &conversation, body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    patch(&app, &ana, &direct, json!({"name": "Us"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let unchanged = app.get_conversation(&bo.token, &conversation).await;
    assert_eq!(names(&unchanged.data(StatusCode::OK)["conversation"]), ["Ana", "Bo"]);
}

async fn when_the_owner_leaves_the_longest_standing_member_owns_the_group(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );
    let conversation = group(&app, &ana, &[&bo]).await;
    patch(&app, &ana, &conversation, json!({"participants": {"add": [cy.id]}}))
        .await
        .data(StatusCode::OK);
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let reply = leave(&app, &ana, &conversation).await;

    assert_eq!(reply.data(StatusCode::OK)["result"], "left");
    assert_eq!(
        ana_stream.next_of("conversation.removed").await.data["conversationId"],
        conversation.as_str()
    );
    let seen_by_bo = app.get_conversation(&bo.token, &conversation).await;
    let seen = seen_by_bo.data(StatusCode::OK)["conversation"].clone();
    assert_eq!(seen["owner"], bo.id.as_str(), "Bo joined before Cy");
    assert_eq!(names(&seen), ["Bo", "Cy"]);
    assert_eq!(seen["lastMessage"], "Ana left the group");
    assert_eq!(seen["latestMessage"]["x"]["type"], "left_participant");

    leave(&app, &bo, &conversation).await.data(StatusCode::OK);
    let last = leave(&app, &cy, &conversation).await;
    assert_eq!(
        last.data(StatusCode::OK)["result"],
        "deleted",
        "the last one out deletes the group"
    );
    leave(&app, &cy, &conversation)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn a_removed_direct_conversation_comes_back_with_a_new_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = app.direct_conversation(&ana, &bo).await;
    app.send_text(&bo, &conversation, "hi").await;

    assert_eq!(
        leave(&app, &ana, &conversation).await.data(StatusCode::OK)["result"],
        "hidden"
    );

    let list = |user: TestUser| {
        let app = &app;
        async move { app.list_conversations(&user.token, "").await.data(StatusCode::OK)["conversations"].clone() }
    };
    assert_eq!(list(ana.clone()).await, json!([]));
    assert_eq!(
        list(bo.clone()).await.as_array().unwrap().len(),
        1,
        "still there for Bo"
    );
    app.send_text(&bo, &conversation, "still there?").await;
    assert_eq!(list(ana.clone()).await[0]["_id"], conversation.as_str());
}

/// Issue 9: the one `conversation.updated` every member gets after a group change carries no
/// field of the actor's own (their pin, archive flag or unread count).
async fn a_group_change_tells_members_nothing_of_the_actors_own_flags(backend: Backend) {
    // Arrange: Ana owns the group and pinned it; Bo listens.
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let created = app.create_group(&ana.token, "Book club", &[&bo.id]).await;
    let group = created.data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = app
        .post(
            &format!("/api/v1/conversation/{group}/pin"),
            Some(&ana.token),
            &json!({}),
        )
        .await;
    assert_eq!(pinned.data(StatusCode::OK)["pinned"], true);
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    // Act
    let renamed = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"name": "Books"}),
        )
        .await;

    // Assert
    assert_eq!(
        renamed.data(StatusCode::OK)["conversation"]["pinned"],
        true,
        "the actor's answer is theirs"
    );
    let updated = bo_stream.next_of("conversation.updated").await;
    assert_eq!(updated.data["name"], "Books");
    for field in ["pinned", "archived", "unreadCount"] {
        assert!(updated.data.get(field).is_none(), "{field} in {}", updated.data);
    }
}

both_backends!(
    group_change_events_carry_ids_not_member_lists,
    a_group_change_tells_members_nothing_of_the_actors_own_flags,
    any_member_renames_the_group_and_everyone_hears_of_it,
    the_owner_may_keep_renaming_to_themselves,
    the_owner_adds_and_removes_members_with_system_messages_and_events,
    group_changes_are_refused_when_they_do_not_fit,
    when_the_owner_leaves_the_longest_standing_member_owns_the_group,
    a_removed_direct_conversation_comes_back_with_a_new_message,
);

/// Issue 9: a group change stores ids and the group's own fields, never the member list, so
/// one request cannot write a copy of a big group per added member.
async fn group_change_events_carry_ids_not_member_lists(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let (cy, di) = (app.register_user("Cy").await, app.register_user("Di").await);
    let conversation = group(&app, &ana, &[&bo, &cy]).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut di_stream = app.open_stream(Auth::Bearer(&di.token), None).await;

    // Act
    patch(
        &app,
        &ana,
        &conversation,
        json!({"participants": {"add": [di.id], "remove": [cy.id]}}),
    )
    .await
    .data(StatusCode::OK);

    // Assert
    let updated = bo_stream.next_of("conversation.updated").await.data;
    let created = di_stream.next_of("conversation.created").await.data;
    assert_eq!(updated, created, "one payload for both");
    assert_eq!(updated["_id"], conversation.as_str());
    assert_eq!(updated["addedIds"], json!([di.id]));
    assert_eq!(updated["removedIds"], json!([cy.id]));
    assert_eq!(updated["participantCount"], 3);
    for field in ["participants", "latestMessage", "lastMessage", "pinned", "unreadCount"] {
        assert!(updated.get(field).is_none(), "{field} in {updated}");
    }
}
