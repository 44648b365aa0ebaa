//! Who may see whom (issue 9): presence, `last-activity` and a profile's `lastActivity` only
//! for users who share an active conversation with the caller; a pending or declined chat
//! request shares none.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, spawn_app_with};
use crate::sse::Auth;

async fn activity(app: &TestApp, viewer: &TestUser, of: &TestUser) -> Value {
    let reply = app
        .get(
            &format!("/api/v1/user/last-activity?ids={}", of.id),
            Some(&viewer.token),
        )
        .await;
    reply.data(StatusCode::OK)["lastActivity"][&of.id].clone()
}

async fn presence_is_shared_with_contacts_only(backend: Backend) {
    // Arrange: Ana is online; Bo talks with her, Cy does not, Di only asked her for a chat.
    let app = spawn_app(backend).await;
    let (ana, bo, cy, di) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
        app.register_user("Di").await,
    );
    app.direct_conversation(&ana, &bo).await;
    let asked = app
        .post("/api/v1/chat-request", Some(&di.token), &json!({"userId": ana.id}))
        .await;
    assert!(asked.status.is_success(), "{}", asked.body);
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let _ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let online = bo_stream.next_of("presence").await;
    assert_eq!(online.data["userId"], ana.id.as_str());

    // Act
    let (bo_sees, cy_sees, di_sees) = (
        activity(&app, &bo, &ana).await,
        activity(&app, &cy, &ana).await,
        activity(&app, &di, &ana).await,
    );
    let bo_profile = app.get_user(&bo.token, &ana.id).await;
    let cy_profile = app.get_user(&cy.token, &ana.id).await;

    // Assert
    assert_eq!(bo_sees, "online", "a contact sees presence");
    assert_eq!(cy_sees, Value::Null, "a stranger sees no presence");
    assert_eq!(di_sees, Value::Null, "a pending requester sees no presence");
    assert_eq!(bo_profile.data(StatusCode::OK)["lastActivity"], "online");
    let cy_profile = cy_profile.data(StatusCode::OK);
    assert_eq!(cy_profile["lastActivity"], Value::Null);
    assert_eq!(
        cy_profile["user"]["_id"],
        ana.id.as_str(),
        "the profile itself is public"
    );
}

async fn a_pending_requester_gets_no_presence_events(backend: Backend) {
    // Arrange: Di asked Ana for a chat; Bo is Ana's contact.
    let app = spawn_app(backend).await;
    let (ana, bo, di) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Di").await,
    );
    app.direct_conversation(&ana, &bo).await;
    app.post("/api/v1/chat-request", Some(&di.token), &json!({"userId": ana.id}))
        .await;
    let mut di_stream = app.open_stream(Auth::Bearer(&di.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    // Act: Ana comes online (Bo hears it), then declines; the decline is the later positive
    // event on Di's stream.
    let _ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    bo_stream.next_of("presence").await;
    let chat = app
        .get("/api/v1/chat-request?direction=incoming", Some(&ana.token))
        .await;
    let chat_id = chat.data(StatusCode::OK)["chatRequests"][0]["chatId"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        &format!("/api/v1/chat-request/{chat_id}/decline"),
        Some(&ana.token),
        &json!({}),
    )
    .await;

    // Assert: the decline reaches Di, and no presence of Ana's came before it.
    let events = di_stream
        .next_until(|event| event.event.starts_with("chat_request."))
        .await;
    assert!(events.iter().all(|event| event.event != "presence"), "{events:?}");
}

/// Every place `email` appears in `reply`, as text: a whole response walked, so a new field that
/// leaks an address anywhere fails the test.
fn emails_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, field) in map {
                if key == "email" {
                    found.push(field.to_string());
                }
                emails_in(field, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| emails_in(item, found)),
        _ => {}
    }
}

/// What Ana's fresh account reads about Bo through every route that shows users: search by his
/// whole address, his profile, a group they share, and her stored events.
async fn emails_ana_reads(app: &TestApp, ana: &TestUser, bo: &TestUser) -> Vec<String> {
    let group = app.group_conversation(bo, "Team", &[ana]).await;
    app.direct_conversation(ana, bo).await;
    let replies = [
        app.search_users(&ana.token, &format!("keyword={}", bo.email)).await,
        app.get_user(&ana.token, &bo.id).await,
        app.get_conversation(&ana.token, &group).await,
        app.list_conversations(&ana.token, "").await,
        app.get("/api/v1/events?after=0&limit=1000", Some(&ana.token)).await,
    ];
    let mut found = Vec::new();
    for reply in &replies {
        assert!(reply.status.is_success(), "{}", reply.body);
        emails_in(&reply.body, &mut found);
    }
    found
}

async fn another_users_email_is_shown_to_nobody_else(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);

    // Act
    let found = emails_ana_reads(&app, &ana, &bo).await;
    let own = app.get_me(&ana.token).await;

    // Assert: not one address of anyone; her own profile still shows hers.
    assert_eq!(found, Vec::<String>::new());
    assert_eq!(own.data(StatusCode::OK)["user"]["email"], ana.email.as_str());
}

async fn a_company_deployment_shows_emails_to_everyone(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("USER_EMAILS_VISIBLE", "true")]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);

    // Act
    let found = emails_ana_reads(&app, &ana, &bo).await;

    // Assert: the search result and the profile show Bo's address, and so do the views of
    // the conversations they share.
    let bo_email = json!(bo.email).to_string();
    assert!(
        found.iter().filter(|email| **email == bo_email).count() >= 4,
        "{found:?}"
    );
}

both_backends!(
    presence_is_shared_with_contacts_only,
    a_pending_requester_gets_no_presence_events,
    another_users_email_is_shown_to_nobody_else,
    a_company_deployment_shows_emails_to_everyone
);
