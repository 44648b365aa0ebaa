//! Push notifications (issue 12), end to end: the app sends to a local Web Push service that
//! verifies each request's VAPID token and decrypts its payload with the subscription's own
//! key, and to a local FCM with its OAuth token endpoint (`push_peers.rs`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};
use crate::people::wait_until_offline;
use crate::push_peers::{FcmAnswer, FcmService, WebPushService, WebSubscription};
use crate::sse::Auth;

/// Long enough for a push through a busy machine; a lease takeover adds its 10 s.
const WITHIN: Duration = Duration::from_secs(20);
const AFTER_TAKEOVER: Duration = Duration::from_secs(40);

/// An app that may call loopback (the local push services), and a Web Push service trusting
/// its VAPID key as `GET /push/vapid-public-key` tells it.
async fn push_app(backend: Backend, settings: &[(&str, &str)]) -> (TestApp, WebPushService) {
    // A closed stream is noticed at the next write: keep-alives every second make that soon.
    let mut all = vec![("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1"), ("SSE_KEEP_ALIVE_SECONDS", "1")];
    all.extend_from_slice(settings);
    let app = spawn_app_with(backend, &all).await;
    let key = vapid_key(&app).await;
    let web = WebPushService::start(&key).await;
    (app, web)
}

async fn vapid_key(app: &TestApp) -> String {
    let reply = app.get("/api/v1/push/vapid-public-key", None).await;
    reply.data(StatusCode::OK)["publicKey"].as_str().unwrap().to_string()
}

/// Registers a new browser subscription of `web` for `user`.
async fn subscribe_web(app: &TestApp, user: &TestUser, web: &WebPushService) -> WebSubscription {
    let subscription = web.subscribe();
    let reply = app
        .post(
            "/api/v1/push/subscription",
            Some(&user.token),
            &json!({
                "platform": "web",
                "webEndpoint": subscription.endpoint,
                "webKeyAuth": subscription.auth,
                "webKeyP256dh": subscription.p256dh,
                "deviceUdid": format!("browser-{}", subscription.id),
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    subscription
}

/// Waits until the push service has seen a request for `browser` (whatever it answered).
async fn wait_for_attempt(web: &WebPushService, browser: &WebSubscription, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while web.attempts(browser) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no attempt at the push");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message_ids(pushes: &[crate::push_peers::WebPush]) -> Vec<String> {
    pushes
        .iter()
        .map(|push| push.payload["messageId"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn an_offline_recipient_gets_one_decryptable_push_per_message(backend: Backend) {
    // Arrange: Bo has a browser subscribed and no stream open.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let browser = subscribe_web(&app, &bo, &web).await;

    // Act
    let first = app.send_text(&ana, &chat, "Hello Bo").await;
    let second = app.send_text(&ana, &chat, &"long ".repeat(60)).await;
    let pushes = web.wait_for(&browser, 2, WITHIN).await;
    // A later push proves that nothing else came for the first two.
    let third = app.send_text(&ana, &chat, "third").await;
    let pushes_then = web.wait_for(&browser, 3, WITHIN).await;

    // Assert
    web.assert_clean();
    assert_eq!(
        message_ids(&pushes_then),
        vec![first.clone(), second, third],
        "one push per message, in order"
    );
    let push = &pushes[0];
    assert_eq!(push.payload["title"], "Ana");
    assert_eq!(push.payload["body"], "Hello Bo");
    assert_eq!(push.payload["cid"], chat.as_str());
    assert_eq!(push.payload["messageId"], first.as_str());
    assert_eq!(push.payload["senderId"], ana.id.as_str());
    // The badge as the push was decided: 1, or 2 when both messages were decided together.
    let first_badge = push.payload["unreadCount"].as_i64().unwrap();
    assert!((1..=2).contains(&first_badge), "{first_badge}");
    assert_eq!(push.payload["firstAttachmentUrl"], Value::Null);
    assert_eq!(
        pushes[1].payload["unreadCount"], 2,
        "the badge counts the unread messages"
    );
    let long = pushes[1].payload["body"].as_str().unwrap();
    assert_eq!(long.chars().count(), 200, "the text is cut to 200 characters");
    assert!(long.ends_with('…'));
    assert_eq!(push.urgency.as_deref(), Some("high"));
    assert!(push.ttl > 0);
    let topic = push.topic.clone().expect("a topic");
    assert!(topic.len() <= 32, "{topic}");
    assert_eq!(
        pushes[1].topic.as_ref(),
        Some(&topic),
        "one topic per conversation: a burst collapses"
    );
    let push_ids: std::collections::HashSet<&str> = pushes_then
        .iter()
        .map(|push| push.payload["pushId"].as_str().unwrap())
        .collect();
    assert_eq!(push_ids.len(), 3, "each push has an id of its own");
}

async fn online_recipients_and_senders_get_no_push(backend: Backend) {
    // Arrange: both have browsers subscribed; Bo has a stream open, Ana (the sender) too.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let ana_browser = subscribe_web(&app, &ana, &web).await;
    let bo_browser = subscribe_web(&app, &bo, &web).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    ana_stream.stream_id().await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    bo_stream.stream_id().await;

    // Act: a message while Bo is online, then Bo goes offline and gets one more.
    let while_online = app.send_text(&ana, &chat, "you are here").await;
    bo_stream
        .next_until(|event| event.event == "message.created" && event.data["_id"] == while_online.as_str())
        .await;
    drop(bo_stream);
    wait_until_offline(&app, &ana, &bo).await;
    let while_offline = app.send_text(&ana, &chat, "you are gone").await;
    let bo_pushes = web.wait_for(&bo_browser, 1, WITHIN).await;
    // Ana goes offline and Bo answers: her first push proves none came for her own messages.
    drop(ana_stream);
    let mut bo_again = app.open_stream(Auth::Bearer(&bo.token), None).await;
    bo_again.stream_id().await;
    wait_until_offline(&app, &bo, &ana).await;
    let answer = app.send_text(&bo, &chat, "back now").await;
    let ana_pushes = web.wait_for(&ana_browser, 1, WITHIN).await;

    // Assert
    web.assert_clean();
    assert_eq!(
        message_ids(&bo_pushes),
        vec![while_offline],
        "no push while a stream is open"
    );
    assert_eq!(message_ids(&ana_pushes), vec![answer], "no push to the sender");
    assert_eq!(message_ids(&web.delivered(&bo_browser)).len(), 1);
}

async fn muted_blocked_and_pending_requests_get_no_push(backend: Backend) {
    // Arrange: Bo is in a group with Ana and Cy, and has a direct chat with Ana; Bo blocks Cy;
    // Di, a stranger, asks Bo for a chat.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo, cy, di) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
        app.register_user("Di").await,
    );
    let chat = app.direct_conversation(&ana, &bo).await;
    let group = app.group_conversation(&ana, "Team", &[&bo, &cy]).await;
    let blocked = app
        .post("/api/v1/user/block", Some(&bo.token), &json!({"ids": [cy.id]}))
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    let browser = subscribe_web(&app, &bo, &web).await;
    let muted = app
        .post(
            &format!("/api/v1/conversation/{chat}/mute"),
            Some(&bo.token),
            &json!({}),
        )
        .await;
    let muted = muted.data(StatusCode::OK).clone();
    let asked = app
        .post("/api/v1/chat-request", Some(&di.token), &json!({"userId": bo.id}))
        .await;
    let request_chat = asked.data(StatusCode::CREATED)["chatRequest"]["chatId"]
        .as_str()
        .unwrap()
        .to_string();

    // Act
    app.send_text(&ana, &chat, "muted chat").await;
    app.send_text(&cy, &group, "from the blocked").await;
    let pending = app.send_message(&di.token, &request_chat, "please talk to me").await;
    assert_eq!(pending.status, StatusCode::CREATED, "{}", pending.body);
    let in_group = app.send_text(&ana, &group, "from Ana in the group").await;
    let first = web.wait_for(&browser, 1, WITHIN).await;
    let unmuted = app
        .post(
            &format!("/api/v1/conversation/{chat}/mute"),
            Some(&bo.token),
            &json!({}),
        )
        .await;
    let unmuted = unmuted.data(StatusCode::OK).clone();
    let after = app.send_text(&ana, &chat, "unmuted chat").await;
    let all = web.wait_for(&browser, 2, WITHIN).await;

    // Assert
    web.assert_clean();
    assert_eq!(muted, json!({"muted": true, "mutedUntil": null}));
    assert_eq!(unmuted, json!({"muted": false, "mutedUntil": null}));
    assert_eq!(message_ids(&first), vec![in_group.clone()]);
    assert_eq!(
        first[0].payload["title"], "Ana in Team",
        "a group's push names the group"
    );
    assert_eq!(
        message_ids(&all),
        vec![in_group, after],
        "nothing muted, blocked or pending"
    );
}

async fn a_mute_can_end_at_a_time(backend: Backend) {
    let (app, _web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let path = format!("/api/v1/conversation/{chat}/mute");

    let past = app
        .post(&path, Some(&bo.token), &json!({"until": "2001-01-01T00:00:00Z"}))
        .await;
    let garbage = app.post(&path, Some(&bo.token), &json!({"until": "tomorrow"})).await;
    let until = (chrono::Utc::now() + chrono::Duration::hours(8)).to_rfc3339();
    let muted = app.post(&path, Some(&bo.token), &json!({"until": until})).await;
    let shown = app.get_conversation(&bo.token, &chat).await;
    let for_ana = app.get_conversation(&ana.token, &chat).await;
    let stranger = app.register_user("Cy").await;
    let foreign = app.post(&path, Some(&stranger.token), &json!({})).await;

    past.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    garbage.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    foreign.assert_error(StatusCode::NOT_FOUND, "not_found");
    let muted = muted.data(StatusCode::OK);
    assert_eq!(muted["muted"], true);
    let ends = chrono::DateTime::parse_from_rfc3339(muted["mutedUntil"].as_str().unwrap()).unwrap();
    let asked = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
    assert!((ends - asked).num_seconds().abs() < 1, "{ends} vs {asked}");
    let shown = shown.data(StatusCode::OK);
    let conversation = shown.get("conversation").unwrap_or(shown);
    assert_eq!(conversation["muted"], true);
    assert_eq!(conversation["mutedUntil"], muted["mutedUntil"]);
    let for_ana = for_ana.data(StatusCode::OK);
    let conversation = for_ana.get("conversation").unwrap_or(for_ana);
    assert_eq!(conversation["muted"], false, "a mute is the caller's own");
}

async fn a_gone_subscription_is_pruned_and_a_503_is_retried_once(backend: Backend) {
    // Arrange: Bo's first browser is gone (410); his second answers 503 once, then takes it.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let gone = subscribe_web(&app, &bo, &web).await;
    let flaky = subscribe_web(&app, &bo, &web).await;
    web.respond(&gone, &[(410, None)]);
    web.respond(&flaky, &[(503, Some(1))]);

    // Act
    let sent = app.send_text(&ana, &chat, "are you there").await;
    let delivered = web.wait_for(&flaky, 1, WITHIN).await;
    let later = app.send_text(&ana, &chat, "still there").await;
    let delivered_then = web.wait_for(&flaky, 2, WITHIN).await;
    let subscriptions = app.get("/api/v1/push/subscription", Some(&bo.token)).await;

    // Assert
    web.assert_clean();
    assert_eq!(message_ids(&delivered), vec![sent.clone()]);
    assert_eq!(
        message_ids(&delivered_then),
        vec![sent, later],
        "the retried push came once"
    );
    assert_eq!(web.attempts(&flaky), 3, "one refused attempt, then one each");
    assert_eq!(web.attempts(&gone), 1, "a gone subscription is tried no more");
    let listed = subscriptions.data(StatusCode::OK)["subscriptions"]
        .as_array()
        .unwrap()
        .clone();
    let endpoints: Vec<&str> = listed
        .iter()
        .map(|item| item["webEndpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        endpoints,
        vec![flaky.endpoint.as_str()],
        "the 410 pruned its subscription"
    );
}

async fn a_message_deleted_while_its_push_waits_is_not_sent(backend: Backend) {
    // Arrange: Bo's push service refuses the first attempt.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let browser = subscribe_web(&app, &bo, &web).await;
    web.respond(&browser, &[(503, Some(2))]);
    let regretted = app.send_text(&ana, &chat, "I regret this").await;
    wait_for_attempt(&web, &browser, WITHIN).await;

    // Act: deleted for everyone before the retry; then another message.
    let deleted = app.delete_message(&ana, &regretted, "all").await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let later = app.send_text(&ana, &chat, "never mind").await;
    let delivered = web.wait_for(&browser, 1, WITHIN).await;

    // Assert: the later push came, the deleted message's never did.
    web.assert_clean();
    assert_eq!(message_ids(&delivered), vec![later]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        web.delivered(&browser).len(),
        1,
        "the deleted message's retry was dropped"
    );
}

async fn a_device_registered_by_another_user_leaves_the_first(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let (bo, cy) = (app.register_user("Bo").await, app.register_user("Cy").await);
    let phone = json!({"platform": "ios", "deviceToken": "shared-phone-token", "deviceUdid": "phone"});
    for user in [&bo, &cy] {
        let reply = app.post("/api/v1/push/subscription", Some(&user.token), &phone).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let of_bo = app.get("/api/v1/push/subscription", Some(&bo.token)).await;
    let of_cy = app.get("/api/v1/push/subscription", Some(&cy.token)).await;
    let slash = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "ios", "deviceToken": "t", "deviceUdid": "a/b"}),
        )
        .await;

    assert_eq!(
        of_bo.data(StatusCode::OK)["subscriptions"],
        json!([]),
        "the phone is Cy's now"
    );
    assert_eq!(of_cy.data(StatusCode::OK)["subscriptions"].as_array().unwrap().len(), 1);
    slash.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn a_crash_between_commit_and_push_still_delivers_after_restart(backend: Backend) {
    // Arrange: the push service is down for Bo's browser (503s) while the first instance holds
    // the push lease.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let browser = subscribe_web(&app, &bo, &web).await;
    web.respond(&browser, &[(503, Some(1)), (503, Some(1)), (503, Some(1))]);
    let sent = app.send_text(&ana, &chat, "do not lose me").await;
    wait_for_attempt(&web, &browser, AFTER_TAKEOVER).await;

    // Act: the instance dies; another starts on the same database.
    let restarted = app.spawn_sibling(&[("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")]).await;
    app.crash();
    let delivered = web.wait_for(&browser, 1, AFTER_TAKEOVER).await;
    let later = restarted.send_text(&ana, &chat, "and me").await;
    let delivered_then = web.wait_for(&browser, 2, WITHIN).await;

    // Assert
    web.assert_clean();
    assert_eq!(message_ids(&delivered), vec![sent.clone()]);
    assert_eq!(
        message_ids(&delivered_then),
        vec![sent, later],
        "delivered once, and nothing twice"
    );
}

async fn two_instances_deliver_each_push_once(backend: Backend) {
    // Arrange
    let (first, web) = push_app(backend, &[]).await;
    let second = first.spawn_sibling(&[("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")]).await;
    let (ana, bo) = (first.register_user("Ana").await, first.register_user("Bo").await);
    let chat = first.direct_conversation(&ana, &bo).await;
    let browser = subscribe_web(&second, &bo, &web).await;

    // Act: messages through both instances.
    let mut sent = Vec::new();
    for round in 0..6 {
        let instance = if round % 2 == 0 { &first } else { &second };
        sent.push(instance.send_text(&ana, &chat, &format!("message {round}")).await);
    }
    let delivered = web.wait_for(&browser, 6, WITHIN).await;
    let last = second.send_text(&ana, &chat, "the last").await;
    sent.push(last);
    let delivered_then = web.wait_for(&browser, 7, WITHIN).await;

    // Assert
    web.assert_clean();
    assert_eq!(delivered.len(), 6);
    let mut got = message_ids(&delivered_then);
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "each message pushed once, by one instance");
}

async fn endpoints_that_reach_the_servers_network_are_refused(backend: Backend) {
    // Only 127.0.0.1:9 is allowed (and nothing listens there).
    let app = spawn_app_with(backend, &[("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1:9")]).await;
    let bo = app.register_user("Bo").await;
    let keys = WebPushService::start(&vapid_key(&app).await).await.subscribe();
    let register = |endpoint: &str| {
        json!({
            "platform": "web", "webEndpoint": endpoint, "webKeyAuth": keys.auth,
            "webKeyP256dh": keys.p256dh, "deviceUdid": "browser-1",
        })
    };

    for endpoint in [
        "http://push.example.com/x",
        "https://127.0.0.1/x",
        "https://127.0.0.1:8443/x",
        "http://127.0.0.1:10/x",
        "https://10.0.0.7/x",
        "https://172.16.5.4/x",
        "https://192.168.0.1/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x",
        "https://[fe80::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://localhost/x",
        "https://0x7f000001/x",
        "https://user:pass@push.example.com/x",
        "file:///etc/passwd",
        "not a url",
    ] {
        let reply = app
            .post("/api/v1/push/subscription", Some(&bo.token), &register(endpoint))
            .await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            reply.body["error"]["fields"]["webEndpoint"].is_string(),
            "{endpoint}: {}",
            reply.body
        );
    }
    let allowed = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &register("http://127.0.0.1:9/push/1"),
        )
        .await;
    let public = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({
                "platform": "web", "webEndpoint": "https://updates.push.services.mozilla.com/wpush/v2/abc",
                "webKeyAuth": keys.auth, "webKeyP256dh": keys.p256dh, "deviceUdid": "browser-2",
            }),
        )
        .await;
    let bad_key = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "web", "webEndpoint": "http://127.0.0.1:9/p", "webKeyAuth": "AAAA",
                    "webKeyP256dh": keys.p256dh, "deviceUdid": "browser-3"}),
        )
        .await;
    let no_token = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "ios", "deviceUdid": "phone"}),
        )
        .await;
    let platform = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "fax", "deviceUdid": "x"}),
        )
        .await;

    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.body);
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
    bad_key.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(
        bad_key.body["error"]["fields"]["webKeyAuth"].is_string(),
        "{}",
        bad_key.body
    );
    no_token.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    platform.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn subscriptions_are_the_callers_and_end_with_their_session(backend: Backend) {
    let app = spawn_app_with(backend, &[("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")]).await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let keys = WebPushService::start(&vapid_key(&app).await).await.subscribe();

    // SAMA's snake_case names, then the same device again with another endpoint.
    let first = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "web", "web_endpoint": keys.endpoint, "web_key_auth": keys.auth,
                    "web_key_p256dh": keys.p256dh, "device_udid": "laptop"}),
        )
        .await;
    let first = first.data(StatusCode::CREATED)["subscription"].clone();
    let replaced = app
        .post(
            "/api/v1/push/subscription",
            Some(&bo.token),
            &json!({"platform": "web", "webEndpoint": format!("{}-2", keys.endpoint), "webKeyAuth": keys.auth,
                    "webKeyP256dh": keys.p256dh, "deviceUdid": "laptop"}),
        )
        .await;
    let replaced = replaced.data(StatusCode::CREATED)["subscription"].clone();
    // A second session of Bo's registers his phone.
    let login = app.login(&bo.email, crate::helpers::PASSWORD).await;
    let phone_token = login.data(StatusCode::OK)["token"].as_str().unwrap().to_string();
    let phone = app
        .post(
            "/api/v1/push/subscription",
            Some(&phone_token),
            &json!({"platform": "android", "deviceToken": "fcm-token-1", "deviceUdid": "phone"}),
        )
        .await;
    assert_eq!(phone.status, StatusCode::CREATED, "{}", phone.body);
    let listed = app.get("/api/v1/push/subscription", Some(&bo.token)).await;
    let of_cy = app.get("/api/v1/push/subscription", Some(&cy.token)).await;
    let cy_deletes = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/push/subscription/laptop",
            Some(&cy.token),
            None,
        )
        .await;
    let logout = app.logout(&phone_token).await;
    assert!(logout.status.is_success(), "{}", logout.body);
    let after_logout = app.get("/api/v1/push/subscription", Some(&bo.token)).await;
    let deleted = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/push/subscription/laptop",
            Some(&bo.token),
            None,
        )
        .await;
    let deleted_again = app
        .call(
            reqwest::Method::DELETE,
            "/api/v1/push/subscription/laptop",
            Some(&bo.token),
            None,
        )
        .await;

    assert_eq!(first["platform"], "web");
    assert_eq!(first["deviceUdid"], "laptop");
    assert!(
        first.get("webKeyAuth").is_none() && first.get("deviceToken").is_none(),
        "keys stay private"
    );
    assert_eq!(
        replaced["_id"], first["_id"],
        "the same device replaces its subscription"
    );
    assert_eq!(replaced["webEndpoint"], format!("{}-2", keys.endpoint).as_str());
    let udids = |reply: &crate::helpers::Reply| -> Vec<String> {
        reply.data(StatusCode::OK)["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["deviceUdid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(udids(&listed), vec!["phone", "laptop"]);
    assert!(udids(&of_cy).is_empty(), "one's subscriptions are one's own");
    cy_deletes.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        udids(&after_logout),
        vec!["laptop"],
        "logging out removes the session's subscriptions"
    );
    assert_eq!(deleted.data(StatusCode::OK)["deviceUdid"], "laptop");
    deleted_again.assert_error(StatusCode::NOT_FOUND, "not_found");
}

async fn a_device_token_gets_an_fcm_v1_message(backend: Backend) {
    // Arrange: Bo's phone and an uninstalled app's token, through FCM.
    let fcm = FcmService::start().await;
    let (app, _web) = push_app(
        backend,
        &[
            ("FCM_SERVICE_ACCOUNT_FILE", &fcm.service_account_file()),
            ("FCM_API_BASE", &fcm.api_base()),
        ],
    )
    .await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let (phone, uninstalled) = (format!("token-{}", Uuid::now_v7()), format!("token-{}", Uuid::now_v7()));
    for (platform, token, udid) in [("android", &phone, "phone"), ("ios", &uninstalled, "old-phone")] {
        let reply = app
            .post(
                "/api/v1/push/subscription",
                Some(&bo.token),
                &json!({"platform": platform, "deviceToken": token, "deviceUdid": udid}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    fcm.respond(&uninstalled, &[FcmAnswer::Unregistered]);

    // Act
    let sent = app.send_text(&ana, &chat, "Hi from Ana").await;
    let messages = fcm.wait_for(&phone, 1, WITHIN).await;
    let deadline = tokio::time::Instant::now() + WITHIN;
    let remaining = loop {
        let listed = app.get("/api/v1/push/subscription", Some(&bo.token)).await;
        let listed = listed.data(StatusCode::OK)["subscriptions"].as_array().unwrap().clone();
        if listed.len() == 1 || tokio::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Assert
    fcm.assert_clean();
    let message = &messages[0].message;
    assert_eq!(message["token"], phone.as_str());
    assert_eq!(message["notification"]["title"], "Ana");
    assert_eq!(message["notification"]["body"], "Hi from Ana");
    assert_eq!(message["data"]["messageId"], sent.as_str());
    assert_eq!(message["data"]["cid"], chat.as_str());
    assert_eq!(message["data"]["unreadCount"], "1", "data values are strings");
    assert_eq!(message["android"]["priority"], "high");
    assert_eq!(message["apns"]["payload"]["aps"]["badge"], 1);
    assert!(fcm.tokens_issued() >= 1);
    assert_eq!(fcm.attempts(&uninstalled), 1);
    assert_eq!(remaining.len(), 1, "UNREGISTERED pruned the old phone: {remaining:?}");
    assert_eq!(remaining[0]["deviceUdid"], "phone");
}

async fn push_events_reach_only_people_who_share_a_conversation(backend: Backend) {
    // Arrange: Ana talks with Bo and Eve, who blocks her; Cy is a stranger to her.
    let (app, web) = push_app(backend, &[]).await;
    let (ana, bo, cy, eve) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
        app.register_user("Eve").await,
    );
    app.direct_conversation(&ana, &bo).await;
    app.direct_conversation(&ana, &eve).await;
    let blocked = app
        .post("/api/v1/user/block", Some(&eve.token), &json!({"ids": [ana.id]}))
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    let bo_browser = subscribe_web(&app, &bo, &web).await;
    let cy_browser = subscribe_web(&app, &cy, &web).await;
    let eve_browser = subscribe_web(&app, &eve, &web).await;

    // Act
    let event = app
        .post(
            "/api/v1/push/event",
            Some(&ana.token),
            &json!({"recipientsIds": [bo.id, cy.id, ana.id, Uuid::now_v7(), eve.id],
                    "message": {"title": "Call", "body": "Ana is calling"}}),
        )
        .await;
    let pushes = web.wait_for(&bo_browser, 1, WITHIN).await;
    let untitled = app
        .post(
            "/api/v1/push/event",
            Some(&ana.token),
            &json!({"recipientsIds": [bo.id], "message": {"title": " ", "body": "x"}}),
        )
        .await;
    let too_many: Vec<Uuid> = (0..101).map(|_| Uuid::now_v7()).collect();
    let crowd = app
        .post(
            "/api/v1/push/event",
            Some(&ana.token),
            &json!({"recipientsIds": too_many, "message": {"title": "t", "body": "b"}}),
        )
        .await;
    // Cy's and Eve's first pushes are from someone they talk to: proof none came from Ana.
    let dee = app.register_user("Dee").await;
    app.direct_conversation(&dee, &cy).await;
    app.direct_conversation(&dee, &eve).await;
    let from_dee = app
        .post(
            "/api/v1/push/event",
            Some(&dee.token),
            &json!({"recipients_ids": [cy.id, eve.id], "message": {"title": "Dee", "body": "hello"}}),
        )
        .await;
    assert_eq!(from_dee.status, StatusCode::CREATED, "{}", from_dee.body);
    let cy_pushes = web.wait_for(&cy_browser, 1, WITHIN).await;
    let eve_pushes = web.wait_for(&eve_browser, 1, WITHIN).await;

    // Assert
    web.assert_clean();
    let event = event.data(StatusCode::CREATED);
    let mut reached: Vec<&str> = event["event"]["recipientsIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    reached.sort();
    let mut expected = vec![bo.id.as_str(), eve.id.as_str()];
    expected.sort();
    assert_eq!(reached, expected, "a blocker reads as reached: a block is never told");
    assert_eq!(event["skippedCount"], 3);
    let push = &pushes[0].payload;
    assert_eq!(push["title"], "Call");
    assert_eq!(push["body"], "Ana is calling");
    assert_eq!(push["senderId"], ana.id.as_str());
    assert_eq!(push["eventId"], event["event"]["_id"]);
    untitled.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    crowd.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(cy_pushes.len(), 1);
    assert_eq!(cy_pushes[0].payload["senderId"], dee.id.as_str());
    assert_eq!(eve_pushes.len(), 1, "nothing from the blocked sender");
    assert_eq!(eve_pushes[0].payload["senderId"], dee.id.as_str());
}

async fn without_preview_a_push_shows_no_text(backend: Backend) {
    let (app, web) = push_app(backend, &[("PUSH_PREVIEW", "false")]).await;
    let (ana, bo) = (app.register_user("Ana").await, app.register_user("Bo").await);
    let chat = app.direct_conversation(&ana, &bo).await;
    let browser = subscribe_web(&app, &bo, &web).await;

    app.send_text(&ana, &chat, "a secret plan").await;
    let pushes = web.wait_for(&browser, 1, WITHIN).await;

    web.assert_clean();
    assert_eq!(pushes[0].payload["body"], "New message");
    assert!(!pushes[0].payload.to_string().contains("secret"));
}

async fn an_unset_vapid_key_is_generated_once_and_kept(backend: Backend) {
    let folder = std::env::temp_dir().join(format!("chat-api-vapid-{}", Uuid::now_v7().simple()));
    let folder_text = folder.display().to_string();
    let settings = [("VAPID_PRIVATE_KEY", ""), ("DATA_DIR", folder_text.as_str())];
    let app = spawn_app_with(backend, &settings).await;
    let sibling = app.spawn_sibling(&settings).await;
    let configured = app.spawn_sibling(&[]).await;

    let (first, second, fixed) = (
        vapid_key(&app).await,
        vapid_key(&sibling).await,
        vapid_key(&configured).await,
    );

    assert_eq!(first, second, "the generated key is kept and shared");
    assert_ne!(first, fixed, "VAPID_PRIVATE_KEY wins");
    let bytes = base64_url_len(&first);
    assert_eq!(bytes, 65, "an uncompressed P-256 point");
    let _ = std::fs::remove_dir_all(folder);
}

/// The decoded length of unpadded base64url text.
fn base64_url_len(text: &str) -> usize {
    assert!(
        text.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    );
    text.len() * 3 / 4
}

both_backends!(
    an_offline_recipient_gets_one_decryptable_push_per_message,
    online_recipients_and_senders_get_no_push,
    muted_blocked_and_pending_requests_get_no_push,
    a_mute_can_end_at_a_time,
    a_gone_subscription_is_pruned_and_a_503_is_retried_once,
    a_crash_between_commit_and_push_still_delivers_after_restart,
    a_message_deleted_while_its_push_waits_is_not_sent,
    a_device_registered_by_another_user_leaves_the_first,
    two_instances_deliver_each_push_once,
    endpoints_that_reach_the_servers_network_are_refused,
    subscriptions_are_the_callers_and_end_with_their_session,
    a_device_token_gets_an_fcm_v1_message,
    push_events_reach_only_people_who_share_a_conversation,
    without_preview_a_push_shows_no_text,
    an_unset_vapid_key_is_generated_once_and_kept,
);
