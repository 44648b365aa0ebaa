//! Rate limits: per-user token buckets with small configured budgets, the 429 they give
//! (`Retry-After`, `RateLimit-Policy`, `RateLimit`), typing thinned per conversation, and the
//! client address behind trusted proxies.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};
use crate::sse::Auth;

const SEND_BUDGET: &[(&str, &str)] = &[("RATE_LIMITS", "on"), ("RATE_LIMIT_SEND", "1/h,3")];

fn header<'a>(reply: &'a crate::helpers::Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

async fn a_flood_of_sends_gets_429_while_other_users_send_and_receive(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, SEND_BUDGET).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = app.direct_conversation(&ana, &bo).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    for n in 0..3 {
        let reply = app.send_message(&ana.token, &conversation, &format!("burst {n}")).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }

    // Act
    let refused = app.send_message(&ana.token, &conversation, "one too many").await;
    let other = app.send_message(&bo.token, &conversation, "still here").await;

    // Assert
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    // One more send every hour (1/h): the wait is about an hour.
    assert!((3590..=3600).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(header(&refused, "ratelimit-policy"), "\"send\";q=3;w=10800");
    assert_eq!(header(&refused, "ratelimit"), format!("\"send\";r=0;t={retry_after}"));
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let delivered = ana_stream
        .next_until(|event| event.event == "message.created" && event.data["content"] == "still here")
        .await;
    assert!(
        delivered.iter().all(|event| event.data["content"] != "one too many"),
        "the refused message was never stored"
    );
    let listed = app.list_messages(&bo.token, &conversation, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"].as_array().unwrap().len(), 4);
}

async fn searches_tickets_and_chat_requests_have_budgets_of_their_own(backend: Backend) {
    // Arrange
    let app = spawn_app_with(
        backend,
        &[
            ("RATE_LIMITS", "on"),
            ("RATE_LIMIT_SEARCH", "1/h,2"),
            ("RATE_LIMIT_STREAM", "1/h,1"),
            ("RATE_LIMIT_CHAT_REQUEST", "1/h,1"),
        ],
    )
    .await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );

    // Act
    let searches: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(app.get("/api/v1/message/search?q=hello", Some(&ana.token)).await.status);
        }
        statuses
    };
    let first_ticket = app.post("/api/v1/events/ticket", Some(&ana.token), &json!({})).await;
    let second_ticket = app.post("/api/v1/events/ticket", Some(&ana.token), &json!({})).await;
    let first_request = app
        .post("/api/v1/chat-request", Some(&ana.token), &json!({"userId": bo.id}))
        .await;
    let second_request = app
        .post("/api/v1/chat-request", Some(&ana.token), &json!({"userId": cy.id}))
        .await;

    // Assert
    assert_eq!(
        searches,
        [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]
    );
    assert!(first_ticket.status.is_success(), "{}", first_ticket.body);
    second_ticket.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(header(&second_ticket, "ratelimit-policy"), "\"stream\";q=1;w=3600");
    assert!(first_request.status.is_success(), "{}", first_request.body);
    second_request.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let bo_search = app.get("/api/v1/message/search?q=hello", Some(&bo.token)).await;
    assert_eq!(bo_search.status, StatusCode::OK, "budgets are per user");
}

async fn rate_limits_off_lets_a_flood_through(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("RATE_LIMITS", "off"), ("RATE_LIMIT_SEND", "1/h,1")]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = app.direct_conversation(&ana, &bo).await;

    // Act
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(
            app.send_message(&ana.token, &conversation, &format!("m{n}"))
                .await
                .status,
        );
    }

    // Assert
    assert_eq!(statuses, [StatusCode::CREATED; 5]);
}

async fn typing_is_forwarded_once_per_interval_and_the_extra_ones_are_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("RATE_LIMITS", "on"), ("TYPING_MIN_INTERVAL_MS", "600000")]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let conversation = app.direct_conversation(&ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let typing = format!("/api/v1/conversation/{conversation}/typing");

    // Act
    let first = app.post(&typing, Some(&ana.token), &json!({"typing": true})).await;
    let second = app.post(&typing, Some(&ana.token), &json!({"typing": false})).await;
    let third = app.post(&typing, Some(&ana.token), &json!({"typing": true})).await;
    app.send_message(&ana.token, &conversation, "after typing").await;

    // Assert: all accepted; one typing event reached Bo before the message that follows.
    for reply in [&first, &second, &third] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let events = bo_stream
        .next_until(|event| event.event == "message.created" && event.data["content"] == "after typing")
        .await;
    let typings: Vec<_> = events.iter().filter(|event| event.event == "typing").collect();
    assert_eq!(typings.len(), 1, "{typings:?}");
    assert_eq!(typings[0].data["typing"], true);
}

async fn login(app: &TestApp, email: &str, forwarded_for: Option<&str>) -> StatusCode {
    let mut request = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.timeout(Duration::from_secs(30)).send().await.unwrap().status()
}

async fn behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_address(backend: Backend) {
    // Arrange: the tests' requests come from 127.0.0.1, here the trusted proxy.
    let app = spawn_app_with(
        backend,
        &[("AUTH_RATE_LIMIT_PER_MINUTE", "2"), ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let ana = app.register_user("Ana").await;

    // Act
    let first_client: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        // The left entries are the client's own claims: spoofing them changes nothing.
        for spoofed in ["198.51.100.7", "6.6.6.6, 198.51.100.7", "7.7.7.7,198.51.100.7"] {
            statuses.push(login(&app, &ana.email, Some(spoofed)).await);
        }
        statuses
    };
    let second_client = login(&app, &ana.email, Some("198.51.100.8")).await;
    // Garbage and no header count against the proxy's own address, never as "no limit".
    let garbage: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(login(&app, &ana.email, Some("not-an-address")).await);
        }
        statuses
    };

    // Assert
    assert_eq!(
        first_client,
        [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]
    );
    assert_eq!(second_client, StatusCode::OK);
    // The registration (no header: the proxy's address) used one of that address's two.
    assert_eq!(
        garbage,
        [
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn without_trusted_proxies_forwarded_addresses_are_ignored(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("AUTH_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let ana = app.register_user("Ana").await;

    // Act: each request claims another address; with the registration, the fourth from here.
    let mut statuses = Vec::new();
    for claimed in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        statuses.push(login(&app, &ana.email, Some(claimed)).await);
    }

    // Assert
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]
    );
}

both_backends!(
    a_flood_of_sends_gets_429_while_other_users_send_and_receive,
    searches_tickets_and_chat_requests_have_budgets_of_their_own,
    rate_limits_off_lets_a_flood_through,
    typing_is_forwarded_once_per_interval_and_the_extra_ones_are_accepted,
    behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_address,
    without_trusted_proxies_forwarded_addresses_are_ignored,
);
