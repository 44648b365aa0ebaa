//! Bounded work per request: a group never grows past GROUP_MAX_MEMBERS, at creation or by
//! any later change, and the lists a request names are bounded.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app_with};

async fn a_group_never_grows_past_its_maximum(backend: Backend) {
    // Arrange: groups of at most 3, owner included.
    let app = spawn_app_with(backend, &[("GROUP_MAX_MEMBERS", "3")]).await;
    let mut users = Vec::new();
    for name in ["Ana", "Bo", "Cy", "Di"] {
        users.push(app.register_user(name).await);
    }
    let (ana, bo, cy, di) = (&users[0], &users[1], &users[2], &users[3]);

    // Act
    let too_big = app.create_group(&ana.token, "Four", &[&bo.id, &cy.id, &di.id]).await;
    let full = app.create_group(&ana.token, "Three", &[&bo.id, &cy.id]).await;
    let group = full.data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let grown = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"add": [di.id]}}),
        )
        .await;
    let oversized_list: Vec<String> = (0..4).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let listed = app
        .patch(
            &format!("/api/v1/conversation/{group}"),
            Some(&ana.token),
            &json!({"participants": {"remove": oversized_list}}),
        )
        .await;

    // Assert
    too_big.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(too_big.body["error"]["fields"]["participants"].is_string());
    grown.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(grown.body["error"]["fields"]["participants"].is_string());
    listed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let now = app.get_conversation(&ana.token, &group).await;
    let participants = now.data(StatusCode::OK)["conversation"]["participants"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(participants, 3, "the refused change left the group as it was");
    let di_sees = app.get_conversation(&di.token, &group).await;
    di_sees.assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn ended_sessions_are_pruned_with_their_used_tokens(backend: Backend) {
    // Arrange: one session logged out, one live.
    let app = spawn_app_with(backend, &[]).await;
    let ended = app.register_user("Ana").await;
    let live = app.login(&ended.email, crate::helpers::PASSWORD).await;
    let live_token = live.data(StatusCode::OK)["token"].as_str().unwrap().to_string();
    app.refresh(&ended.refresh_token).await;
    assert_eq!(app.logout(&ended.token).await.status, StatusCode::OK);
    let store = chat_api::store::Store::connect(&app.database_url, &Default::default())
        .await
        .unwrap();

    // Act: prune as the hourly task does, a day later.
    let now = chat_api::store::now();
    let pruned = store
        .prune_sessions(now, now + chrono::Duration::seconds(1))
        .await
        .unwrap();

    // Assert
    assert_eq!(pruned, 1, "only the ended session goes");
    assert_eq!(app.get_me(&live_token).await.status, StatusCode::OK);
    store.close().await;
}

both_backends!(
    a_group_never_grows_past_its_maximum,
    ended_sessions_are_pruned_with_their_used_tokens,
);
