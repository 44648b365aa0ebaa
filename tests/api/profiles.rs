//! Profiles: editing (name, about, phone, email), the password, users by ids, search filters.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, spawn_app, text};
use crate::sse::Auth;

async fn a_profile_edit_reaches_the_users_devices_and_partners_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let dan = app.register_user("Dan").await;
    app.direct_conversation(&ana, &bo).await;
    let mut ana_other_device = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut cy_stream = app.open_stream(Auth::Bearer(&cy.token), None).await;

    let reply = app
        .patch(
            "/api/v1/user/me",
            Some(&ana.token),
            &json!({"name": "  Ana Lima ", "about": "Designer in Lisbon", "phone": "+351 912 345 678"}),
        )
        .await;

    let me = reply.data(StatusCode::OK)["user"].clone();
    assert_eq!(
        (me["name"].clone(), me["about"].clone(), me["phone"].clone()),
        (json!("Ana Lima"), json!("Designer in Lisbon"), json!("+351912345678"))
    );
    let own = ana_other_device.next_of("user.updated").await.data;
    assert_eq!(own["user"]["phone"], "+351912345678", "her own devices see her phone");
    let seen = bo_stream.next_of("user.updated").await.data;
    assert_eq!(
        (seen["user"]["name"].clone(), seen["user"]["about"].clone()),
        (json!("Ana Lima"), json!("Designer in Lisbon"))
    );
    assert!(
        seen["user"].get("phone").is_none(),
        "a partner does not see her phone: {seen}"
    );
    let profile = app.get(&format!("/api/v1/user/{}", ana.id), Some(&bo.token)).await;
    assert_eq!(profile.data(StatusCode::OK)["user"]["about"], "Designer in Lisbon");
    // Cy shares no conversation with Ana: the next thing Cy hears of is his own new chat.
    app.direct_conversation(&cy, &dan).await;
    let first = cy_stream
        .next_until(|event| event.event == "conversation.created")
        .await;
    assert!(
        first.iter().all(|event| event.event != "user.updated"),
        "Cy is not told of Ana's profile: {first:?}"
    );

    // `phone: null` removes it; absent fields stay.
    let cleared = app
        .patch("/api/v1/user/me", Some(&ana.token), &json!({"phone": null}))
        .await;
    let me = cleared.data(StatusCode::OK)["user"].clone();
    assert_eq!(
        (me["phone"].clone(), me["about"].clone()),
        (Value::Null, json!("Designer in Lisbon"))
    );
    // Bo sees nothing of that, nor of a change that changes nothing: the next thing he hears
    // of is Ana's message.
    let same = app
        .patch("/api/v1/user/me", Some(&ana.token), &json!({"name": "Ana Lima"}))
        .await;
    assert_eq!(
        same.data(StatusCode::OK)["user"]["updatedAt"],
        me["updatedAt"],
        "nothing changed, nothing written"
    );
    let chat = app.direct_conversation(&ana, &bo).await;
    app.send_message(&ana.token, &chat, "hello").await;
    let heard = bo_stream.next_until(|event| event.event == "message.created").await;
    assert!(
        heard.iter().all(|event| event.event != "user.updated"),
        "partners hear only of what they see: {heard:?}"
    );
}

async fn phones_and_emails_are_checked_and_unique(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let patch = |token: String, body: Value| {
        let app = &app;
        async move { app.patch("/api/v1/user/me", Some(&token), &body).await }
    };

    patch(ana.token.clone(), json!({"phone": "+44 20 7946 0958"}))
        .await
        .data(StatusCode::OK);
    patch(bo.token.clone(), json!({"phone": "+442079460958"}))
        .await
        .assert_error(StatusCode::CONFLICT, "phone_taken");
    let bad = patch(
        bo.token.clone(),
        json!({"phone": "020 7946 0958", "name": "", "about": "x".repeat(501)}),
    )
    .await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields = bad.body["error"]["fields"].clone();
    assert!(
        fields.get("phone").is_some() && fields.get("name").is_some() && fields.get("about").is_some(),
        "every failing field: {fields}"
    );

    let new_email = format!("ana.new.{}@example.com", &ana.id[..8]);
    patch(ana.token.clone(), json!({"email": new_email}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    patch(
        ana.token.clone(),
        json!({"email": new_email, "currentPassword": "not my password"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "invalid_credentials");
    patch(
        ana.token.clone(),
        json!({"email": bo.email, "currentPassword": PASSWORD}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "email_taken");
    let changed = patch(
        ana.token.clone(),
        json!({"email": new_email.to_uppercase(), "current_password": PASSWORD}),
    )
    .await;
    assert_eq!(changed.data(StatusCode::OK)["user"]["email"], new_email.as_str());
    app.login(&new_email, PASSWORD).await.data(StatusCode::OK);
    app.login(&ana.email, PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn a_new_password_ends_the_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let laptop = text(&app.login(&ana.email, PASSWORD).await.data(StatusCode::OK)["token"]);
    let mut laptop_stream = app.open_stream(Auth::Bearer(&laptop), None).await;
    let change = |current: &str, new: &str| json!({"currentPassword": current, "newPassword": new});

    app.post(
        "/api/v1/user/me/password",
        Some(&ana.token),
        &change("wrong one!", "a brand new secret"),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "invalid_credentials");
    app.post("/api/v1/user/me/password", Some(&ana.token), &change(PASSWORD, "short"))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/user/getme", Some(&laptop)).await.data(StatusCode::OK);

    let changed = app
        .post(
            "/api/v1/user/me/password",
            Some(&ana.token),
            &change(PASSWORD, "a brand new secret"),
        )
        .await;

    assert_eq!(changed.data(StatusCode::OK)["endedSessions"], 1);
    app.get("/api/v1/user/getme", Some(&laptop))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    assert!(
        laptop_stream.ends_within(std::time::Duration::from_secs(10)).await,
        "the laptop's stream closes"
    );
    app.get("/api/v1/user/getme", Some(&ana.token))
        .await
        .data(StatusCode::OK);
    app.login(&ana.email, PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login(&ana.email, "a brand new secret").await.data(StatusCode::OK);
}

async fn users_by_ids_and_search_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bob Finder").await;
    let bea = app.register_user("Bea Finder").await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let listed = app
        .get(
            &format!("/api/v1/user/by-ids?ids={},{unknown},{}", bo.id, bea.id),
            Some(&ana.token),
        )
        .await;
    let ids: Vec<String> = listed.data(StatusCode::OK)["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| text(&user["_id"]))
        .collect();
    assert_eq!(
        ids,
        [bo.id.clone(), bea.id.clone()],
        "in the order asked, unknown left out"
    );
    let too_many = vec![unknown.clone(); 101].join(",");
    app.get(&format!("/api/v1/user/by-ids?ids={too_many}"), Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let found = |query: String| {
        let app = &app;
        let token = ana.token.clone();
        async move {
            let reply = app
                .get(&format!("/api/v1/user?keyword=finder{query}"), Some(&token))
                .await;
            reply.data(StatusCode::OK)["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|user| text(&user["name"]))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found(String::new()).await, ["Bea Finder", "Bob Finder"]);
    assert_eq!(found(format!("&ignoreIds={}", bea.id)).await, ["Bob Finder"]);
    let before_edit = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    app.patch("/api/v1/user/me", Some(&bo.token), &json!({"about": "hi"}))
        .await
        .data(StatusCode::OK);
    let since = before_edit.replace('+', "%2B");
    assert_eq!(found(format!("&updatedAfter={since}")).await, ["Bob Finder"]);
    app.get("/api/v1/user?keyword=finder&updatedAfter=yesterday", Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

both_backends!(
    a_profile_edit_reaches_the_users_devices_and_partners_only,
    phones_and_emails_are_checked_and_unique,
    a_new_password_ends_the_other_sessions,
    users_by_ids_and_search_filters,
);
