//! The event stream: delivery, tickets, resume exactly once, reset, polling, typing,
//! presence, several streams per user, and (PostgreSQL) several instances.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, spawn_app_with};
use crate::sse::{Auth, EventStream, SseEvent};

/// Two users and their direct conversation.
async fn pair(app: &TestApp) -> (TestUser, TestUser, String) {
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    (ana, bo, conversation)
}

async fn send(app: &TestApp, user: &TestUser, conversation: &str, text: &str) -> Value {
    app.send_message(&user.token, conversation, text)
        .await
        .data(StatusCode::CREATED)["message"]
        .clone()
}

async fn stream_delivers_message_created_to_every_participant_including_the_sender(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let message = send(&app, &ana, &conversation, "hello").await;

    for stream in [&mut bo_stream, &mut ana_stream] {
        let event = stream.next_of("message.created").await;
        assert_eq!(
            event.data, message,
            "the event's data is the message as POST returned it"
        );
        assert!(event.id.is_some(), "stored events carry their position as id");
    }
}

async fn stream_answers_event_stream_headers_and_a_retry_hint(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    let mut stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    assert_eq!(stream.status, StatusCode::OK);
    let header = |name: &str| {
        stream
            .headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_string())
    };
    assert!(header("content-type").unwrap().starts_with("text/event-stream"));
    assert!(header("cache-control").unwrap().contains("no-cache"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    assert!(matches!(header("content-encoding").as_deref(), None | Some("identity")));
    assert_eq!(stream.retry_hint().await, Some(3000));
}

async fn stream_refuses_missing_invalid_and_used_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    let anonymous = app.get("/api/v1/events/stream", None).await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    let bad_token = app.get("/api/v1/events/stream", Some("not-a-token")).await;
    bad_token.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let bogus_ticket = app.get("/api/v1/events/stream?ticket=0123456789abcdef", None).await;
    bogus_ticket.assert_error(StatusCode::UNAUTHORIZED, "invalid_ticket");

    let ticket = app.stream_ticket(&ana.token).await;
    let first = app.open_stream(Auth::Ticket(&ticket), None).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = app.get(&format!("/api/v1/events/stream?ticket={ticket}"), None).await;
    again.assert_error(StatusCode::UNAUTHORIZED, "invalid_ticket");
}

async fn a_ticket_opens_the_stream_of_its_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let ticket = app.stream_ticket(&bo.token).await;
    let mut stream = app.open_stream(Auth::Ticket(&ticket), None).await;

    let message = send(&app, &ana, &conversation, "via ticket").await;

    assert_eq!(stream.next_of("message.created").await.data, message);
}

async fn a_ticket_of_a_logged_out_session_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let ticket = app.stream_ticket(&ana.token).await;
    app.logout(&ana.token).await.data(StatusCode::OK);

    let reply = app.get(&format!("/api/v1/events/stream?ticket={ticket}"), None).await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_ticket");
}

async fn reconnecting_with_last_event_id_replays_exactly_what_was_missed_then_goes_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    send(&app, &ana, &conversation, "one").await;
    let seen = stream.next_of("message.created").await;
    drop(stream);

    let missed = [
        send(&app, &ana, &conversation, "two").await,
        send(&app, &bo, &conversation, "three").await,
    ];
    let mut resumed = app.open_stream(Auth::Bearer(&bo.token), seen.id.as_deref()).await;
    for expected in &missed {
        let event = resumed.next().await.unwrap();
        assert_eq!((event.event.as_str(), &event.data), ("message.created", expected));
    }
    let live = send(&app, &ana, &conversation, "four").await;

    assert_eq!(
        resumed.next().await.unwrap().data,
        live,
        "live after the replay, nothing repeated"
    );
}

async fn last_event_id_also_works_as_a_query_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let position = app.list_conversations(&bo.token, "").await.data(StatusCode::OK)["eventId"]
        .as_str()
        .unwrap()
        .to_string();
    let missed = send(&app, &ana, &conversation, "while away").await;

    let path = format!("/api/v1/events/stream?lastEventId={position}");
    let mut stream = app.open_stream_at(&path, Auth::Bearer(&bo.token), None).await;

    stream.next_until(|event| event.data == missed).await;
}

/// The position a list answers is never ahead of what the list shows (PostgreSQL holds it
/// below transactions still running anywhere), so a stream opened from it may repeat events
/// the list already reflected, but never misses one after it.
async fn lists_carry_an_event_id_from_which_the_stream_misses_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let before = send(&app, &ana, &conversation, "before the load").await;
    let conversations = app.list_conversations(&bo.token, "").await;
    let messages = app.list_messages(&bo.token, &conversation, "").await;
    let position = conversations.data(StatusCode::OK)["eventId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(messages.data(StatusCode::OK)["eventId"].is_string());

    let after_load = send(&app, &ana, &conversation, "after the load").await;
    let mut stream = app.open_stream(Auth::Bearer(&bo.token), Some(&position)).await;

    let arrived = stream.next_until(|event| event.data == after_load).await;
    for earlier in &arrived[..arrived.len() - 1] {
        assert!(
            earlier.data["_id"] == conversation.as_str() || earlier.data == before,
            "only what the loaded state already showed may come before: {earlier:?}"
        );
    }
}

async fn an_unknown_or_future_resume_position_gets_an_explicit_reset(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    send(&app, &ana, &conversation, "hello").await;

    for position in ["not-a-position", "999999999-999999999", "999999999"] {
        let mut stream = app.open_stream(Auth::Bearer(&bo.token), Some(position)).await;
        let reset = stream.next().await.unwrap();
        assert_eq!(reset.event, "reset", "for {position:?}");
        assert!(reset.data["reason"].is_string());
        let head = reset.id.expect("a reset carries the position to continue from");

        let live = send(&app, &ana, &conversation, position).await;
        // After the reset the stream is live (it may first repeat what the refetch shows).
        stream.next_until(|event| event.data == live).await;
        assert_ne!(head, position);
    }
}

async fn polling_returns_the_same_events_in_the_same_order_as_the_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut stream = app.open_stream(Auth::Bearer(&bo.token), Some("0")).await;
    for text in ["a", "b", "c"] {
        send(&app, &ana, &conversation, text).await;
    }
    let mut streamed = Vec::new();
    for _ in 0..4 {
        streamed.push(stream.next().await.unwrap());
    }

    let mut polled = Vec::new();
    let mut after = "0".to_string();
    loop {
        let reply = app
            .get(&format!("/api/v1/events?after={after}&limit=2"), Some(&bo.token))
            .await;
        let data = reply.data(StatusCode::OK).clone();
        let events = data["events"].as_array().unwrap().clone();
        if events.is_empty() {
            assert_eq!(
                data["nextAfter"],
                after.as_str(),
                "nothing new: the same position again"
            );
            break;
        }
        polled.extend(events);
        after = data["nextAfter"].as_str().unwrap().to_string();
    }

    let kinds: Vec<&str> = streamed.iter().map(|event| event.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "conversation.created",
            "message.created",
            "message.created",
            "message.created"
        ]
    );
    assert_eq!(polled.len(), streamed.len());
    for (poll, stream) in polled.iter().zip(&streamed) {
        assert_eq!(poll["id"].as_str(), stream.id.as_deref());
        assert_eq!(poll["event"], stream.event.as_str());
        assert_eq!(poll["data"], stream.data);
    }
}

async fn polling_refuses_a_malformed_position_and_resets_an_unknown_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    app.get("/api/v1/events?after=yesterday", Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.get("/api/v1/events?limit=0", Some(&ana.token))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let reset = app.get("/api/v1/events?after=999999999", Some(&ana.token)).await;
    assert_eq!(reset.data(StatusCode::OK)["events"][0]["event"], "reset");
    app.get("/api/v1/events", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
}

async fn others_events_never_reach_a_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let mut carl_stream = app.open_stream(Auth::Bearer(&carl.token), Some("0")).await;

    send(&app, &ana, &conversation, "private").await;
    send(&app, &bo, &conversation, "also private").await;

    carl_stream
        .assert_no("message.created", Duration::from_millis(500))
        .await;
    let polled = app.get("/api/v1/events?after=0", Some(&carl.token)).await;
    assert_eq!(polled.data(StatusCode::OK)["events"], json!([]));
}

async fn typing_reaches_the_other_participants_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;

    let reply = app
        .post(
            &format!("/api/v1/conversation/{conversation}/typing"),
            Some(&ana.token),
            &json!({"typing": true}),
        )
        .await;

    assert_eq!(reply.data(StatusCode::OK)["typing"], true);
    let typing = bo_stream.next_of("typing").await;
    assert_eq!(
        typing.data,
        json!({"conversationId": conversation, "userId": ana.id, "typing": true})
    );
    assert!(typing.id.is_none(), "ephemeral events do not move the resume position");
    ana_stream.assert_no("typing", Duration::from_millis(300)).await;
    let polled = app.get("/api/v1/events?after=0", Some(&bo.token)).await;
    assert!(
        polled.data(StatusCode::OK)["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["event"] != "typing")
    );
}

async fn typing_is_refused_outside_the_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_ana, _bo, conversation) = pair(&app).await;
    let carl = app.register_user("Carl").await;
    let path = format!("/api/v1/conversation/{conversation}/typing");

    app.post(&path, Some(&carl.token), &json!({"typing": true}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.post(&path, Some(&carl.token), &json!({"typing": "yes"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

async fn presence_goes_online_and_offline_for_contacts_and_last_activity_follows(backend: Backend) {
    // A closed connection shows when a write to it fails: the keep-alive, here every second.
    let app = spawn_app_with(backend, &[("SSE_KEEP_ALIVE_SECONDS", "1")]).await;
    let (ana, bo, _conversation) = pair(&app).await;
    let stranger = app.register_user("Stranger").await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut stranger_stream = app.open_stream(Auth::Bearer(&stranger.token), None).await;
    let last_activity = |token: String, id: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/user/last-activity?ids={id}"), Some(&token))
                .await
        }
    };

    let bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let online = ana_stream.next_of("presence").await;
    assert_eq!(
        (online.data["userId"].as_str(), online.data["status"].as_str()),
        (Some(bo.id.as_str()), Some("online"))
    );
    let reply = last_activity(ana.token.clone(), bo.id.clone()).await;
    assert_eq!(reply.data(StatusCode::OK)["lastActivity"][&bo.id], "online");

    drop(bo_stream);
    let offline = ana_stream.next_of("presence").await;
    assert_eq!(
        (offline.data["userId"].as_str(), offline.data["status"].as_str()),
        (Some(bo.id.as_str()), Some("offline"))
    );
    let reply = last_activity(ana.token.clone(), bo.id.clone()).await;
    assert!(reply.data(StatusCode::OK)["lastActivity"][&bo.id].is_number());
    stranger_stream.assert_no("presence", Duration::from_millis(300)).await;
}

async fn a_quick_reconnect_does_not_flap_presence(backend: Backend) {
    let app = spawn_app_with(backend, &[("PRESENCE_DEBOUNCE_MS", "1500")]).await;
    let (ana, bo, _conversation) = pair(&app).await;
    let mut ana_stream = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let first = app.open_stream(Auth::Bearer(&bo.token), None).await;
    assert_eq!(ana_stream.next_of("presence").await.data["status"], "online");

    drop(first);
    let _second = app.open_stream(Auth::Bearer(&bo.token), None).await;

    ana_stream.assert_no("presence", Duration::from_millis(2500)).await;
}

async fn last_activity_refuses_too_many_or_malformed_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();

    let too_many = app
        .get(
            &format!("/api/v1/user/last-activity?ids={}", many.join(",")),
            Some(&ana.token),
        )
        .await;
    too_many.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let malformed = app.get("/api/v1/user/last-activity?ids=abc", Some(&ana.token)).await;
    malformed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let exactly_100 = app
        .get(
            &format!("/api/v1/user/last-activity?ids={}", many[..100].join(",")),
            Some(&ana.token),
        )
        .await;
    assert_eq!(
        exactly_100.data(StatusCode::OK)["lastActivity"],
        json!({}),
        "unknown users are left out"
    );
}

async fn every_stream_of_a_user_receives_every_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut phone = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut laptop = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let message = send(&app, &ana, &conversation, "to both").await;

    assert_eq!(phone.next_of("message.created").await.data, message);
    assert_eq!(laptop.next_of("message.created").await.data, message);
}

async fn opening_more_streams_than_allowed_closes_the_oldest(backend: Backend) {
    let app = spawn_app_with(backend, &[("MAX_STREAMS_PER_USER", "2")]).await;
    let (ana, bo, conversation) = pair(&app).await;
    let mut oldest = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut middle = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let mut newest = app.open_stream(Auth::Bearer(&bo.token), None).await;

    assert!(
        oldest.ends_within(Duration::from_secs(5)).await,
        "the oldest stream was closed"
    );
    let message = send(&app, &ana, &conversation, "after the swap").await;
    assert_eq!(middle.next_of("message.created").await.data, message);
    assert_eq!(newest.next_of("message.created").await.data, message);
}

/// Many concurrent senders, receivers that drop and resume their streams at arbitrary moments:
/// every receiver must see every event of its conversations exactly once, each conversation's
/// messages in commit order.
async fn concurrent_senders_and_resuming_receivers_see_every_event_exactly_once(backend: Backend) {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 15;
    let app = spawn_app(backend).await;
    let mut users = Vec::new();
    for name in ["Ana", "Bo", "Cy", "Di"] {
        users.push(app.register_user(name).await);
    }
    let ids: Vec<&str> = users.iter().map(|user| user.id.as_str()).collect();
    let group = app
        .create_group(&users[0].token, "Everyone", &ids[1..])
        .await
        .data(StatusCode::CREATED)["conversation"]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let direct = app.direct_conversation(&users[0], &users[1]).await;
    let start = app.list_conversations(&users[1].token, "").await.data(StatusCode::OK)["eventId"]
        .as_str()
        .unwrap()
        .to_string();
    // Every third message goes to Ana and Bo's direct conversation, the rest to the group.
    let plan: Vec<(usize, usize, bool)> = (0..SENDERS)
        .flat_map(|sender| (0..PER_SENDER).map(move |round| (sender, round, (sender + round) % 3 == 0)))
        .collect();
    let group_messages = plan.iter().filter(|(_, _, direct)| !direct).count();

    let senders = (0..SENDERS).map(|sender| {
        let (app, users, group, direct, plan) = (&app, &users, &group, &direct, &plan);
        async move {
            for &(_, round, to_direct) in plan.iter().filter(|step| step.0 == sender) {
                let (conversation, author) = if to_direct {
                    (direct, &users[round % 2])
                } else {
                    (group, &users[sender])
                };
                let reply = app
                    .send_message(&author.token, conversation, &format!("{sender}/{round}"))
                    .await;
                reply.data(StatusCode::CREATED);
            }
        }
    });
    let receivers = (1..4).map(|receiver| {
        let expected = if receiver == 1 { plan.len() } else { group_messages };
        let (app, user, start) = (&app, &users[receiver], start.clone());
        async move { receive_with_random_reconnects(app, user, start, expected, receiver as u64).await }
    });
    let (_, received) = tokio::join!(
        futures_util::future::join_all(senders),
        futures_util::future::join_all(receivers)
    );

    for (index, events) in received.iter().enumerate() {
        let user = &users[index + 1];
        for conversation in [&group, &direct] {
            let listed = app.list_messages(&user.token, conversation, "limit=100").await;
            if listed.status == StatusCode::NOT_FOUND {
                continue;
            }
            let mut committed: Vec<&str> = listed.data(StatusCode::OK)["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["_id"].as_str().unwrap())
                .collect();
            committed.reverse();
            let streamed: Vec<&str> = events
                .iter()
                .filter(|event| event.event == "message.created" && event.data["conversation"] == conversation.as_str())
                .map(|event| event.data["_id"].as_str().unwrap())
                .collect();
            assert_eq!(
                streamed, committed,
                "{}: every message of {conversation} once, in commit order",
                user.name
            );
        }
    }
}

/// An event id as an ordered pair: `<tx>-<id>`, or `<id>` (tx 0).
fn position(id: &str) -> (i64, i64) {
    match id.split_once('-') {
        Some((tx, id)) => (tx.parse().unwrap(), id.parse().unwrap()),
        None => (0, id.parse().unwrap()),
    }
}

/// Reads `user`'s stream from `start` until `expected` messages arrived, dropping and resuming
/// the stream after a pseudo-random number of events each time. Checks on the way that event
/// ids never repeat and never go backwards.
async fn receive_with_random_reconnects(
    app: &TestApp,
    user: &TestUser,
    start: String,
    expected: usize,
    seed: u64,
) -> Vec<SseEvent> {
    let mut random = seed;
    let mut events: Vec<SseEvent> = Vec::new();
    let mut last_id = start;
    let mut connections = 0;
    while events.iter().filter(|event| event.event == "message.created").count() < expected {
        connections += 1;
        assert!(
            connections < 1000,
            "{}: no progress after {} events",
            user.name,
            events.len()
        );
        let mut stream: EventStream = app.open_stream(Auth::Bearer(&user.token), Some(&last_id)).await;
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let take = 1 + (random >> 33) % 12;
        for _ in 0..take {
            let Some(Some(event)) = stream.next_within(Duration::from_secs(10)).await else {
                break;
            };
            let Some(id) = event.id.clone() else { continue };
            assert!(
                position(&id) > position(&last_id),
                "{}: event {id} after {last_id}: repeated or out of order",
                user.name
            );
            last_id = id;
            events.push(event);
        }
    }
    events
}

async fn logging_out_ends_the_sessions_open_streams_but_not_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ana, bo, conversation) = pair(&app).await;
    let other_session = app
        .login(&bo.email, crate::helpers::PASSWORD)
        .await
        .data(StatusCode::OK)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ended = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let mut kept = app.open_stream(Auth::Bearer(&other_session), None).await;

    app.logout(&bo.token).await.data(StatusCode::OK);

    assert!(
        ended.ends_within(Duration::from_secs(5)).await,
        "the logged-out session's stream ends"
    );
    let message = send(&app, &ana, &conversation, "still here?").await;
    assert_eq!(kept.next_of("message.created").await.data, message);
}

async fn a_reused_refresh_token_ends_the_sessions_open_streams(backend: Backend) {
    let app = spawn_app(backend).await;
    let bo = app.register_user("Bo").await;
    let mut stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    app.refresh(&bo.refresh_token).await.data(StatusCode::OK);

    let reused = app.refresh(&bo.refresh_token).await;

    reused.assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    assert!(stream.ends_within(Duration::from_secs(5)).await);
}

/// Issue 9: a poller whose conversations are quiet still moves forward, past everyone else's
/// events, so its next poll does not read them again; and nothing of its own is skipped.
async fn a_quiet_poll_moves_past_other_peoples_events(backend: Backend) {
    // Arrange: Bo polls; Ana and Cy talk without him.
    let app = spawn_app(backend).await;
    let (ana, bo, cy) = (
        app.register_user("Ana").await,
        app.register_user("Bo").await,
        app.register_user("Cy").await,
    );
    let bo_chat = app.direct_conversation(&ana, &bo).await;
    let first = app.get("/api/v1/events?after=0", Some(&bo.token)).await;
    let start = first.data(StatusCode::OK)["nextAfter"].as_str().unwrap().to_string();
    let others = app.direct_conversation(&ana, &cy).await;
    for n in 0..3 {
        app.send_text(&ana, &others, &format!("not for Bo {n}")).await;
    }

    // Act: poll while nothing is for Bo. On PostgreSQL the readable end of the log waits for
    // every older transaction in the cluster (other tests' too), so it may take a few polls.
    let mut moved_to = start.clone();
    for _ in 0..100 {
        let quiet = app.get(&format!("/api/v1/events?after={start}"), Some(&bo.token)).await;
        let quiet = quiet.data(StatusCode::OK).clone();
        assert_eq!(quiet["events"], json!([]));
        moved_to = quiet["nextAfter"].as_str().unwrap().to_string();
        if moved_to != start {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.send_text(&ana, &bo_chat, "for Bo").await;
    let next = app
        .get(&format!("/api/v1/events?after={moved_to}"), Some(&bo.token))
        .await;

    // Assert
    assert_ne!(moved_to, start, "the position moved past the others' events");
    let events = next.data(StatusCode::OK)["events"].as_array().unwrap().clone();
    let texts: Vec<&Value> = events
        .iter()
        .filter(|event| event["event"] == "message.created")
        .map(|event| &event["data"]["content"])
        .collect();
    assert_eq!(texts, [&json!("for Bo")]);
}

both_backends!(
    a_quiet_poll_moves_past_other_peoples_events,
    logging_out_ends_the_sessions_open_streams_but_not_other_sessions,
    a_reused_refresh_token_ends_the_sessions_open_streams,
    stream_delivers_message_created_to_every_participant_including_the_sender,
    stream_answers_event_stream_headers_and_a_retry_hint,
    stream_refuses_missing_invalid_and_used_credentials,
    a_ticket_opens_the_stream_of_its_user,
    a_ticket_of_a_logged_out_session_is_refused,
    reconnecting_with_last_event_id_replays_exactly_what_was_missed_then_goes_live,
    last_event_id_also_works_as_a_query_parameter,
    lists_carry_an_event_id_from_which_the_stream_misses_nothing,
    an_unknown_or_future_resume_position_gets_an_explicit_reset,
    polling_returns_the_same_events_in_the_same_order_as_the_stream,
    polling_refuses_a_malformed_position_and_resets_an_unknown_one,
    others_events_never_reach_a_stream,
    typing_reaches_the_other_participants_only,
    typing_is_refused_outside_the_conversation,
    presence_goes_online_and_offline_for_contacts_and_last_activity_follows,
    a_quick_reconnect_does_not_flap_presence,
    last_activity_refuses_too_many_or_malformed_ids,
    every_stream_of_a_user_receives_every_event,
    opening_more_streams_than_allowed_closes_the_oldest,
    concurrent_senders_and_resuming_receivers_see_every_event_exactly_once,
);

/// Several instances on one PostgreSQL database behave as one (SQLite is one process).
mod several_instances {
    use super::*;

    async fn two_instances() -> (TestApp, TestApp) {
        // Keep-alives every second, so closed streams are noticed quickly.
        let settings = [("SSE_KEEP_ALIVE_SECONDS", "1")];
        let first = spawn_app_with(Backend::Postgres, &settings).await;
        let second = first.spawn_sibling(&settings).await;
        assert_eq!(second.backend, Backend::Postgres);
        (first, second)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_posted_on_one_instance_reaches_a_stream_on_another() {
        let (first, second) = two_instances().await;
        let (ana, bo, conversation) = pair(&first).await;
        let mut bo_on_second = second.open_stream(Auth::Bearer(&bo.token), None).await;

        let message = send(&first, &ana, &conversation, "across instances").await;

        assert_eq!(bo_on_second.next_of("message.created").await.data, message);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_resumes_on_another_instance_without_loss() {
        let (first, second) = two_instances().await;
        let (ana, bo, conversation) = pair(&first).await;
        let mut on_first = first.open_stream(Auth::Bearer(&bo.token), None).await;
        send(&first, &ana, &conversation, "seen on the first").await;
        let seen = on_first.next_of("message.created").await;
        drop(on_first);

        let mut missed = Vec::new();
        for text in ["one", "two", "three"] {
            missed.push(send(&first, &ana, &conversation, text).await);
        }
        let mut on_second = second.open_stream(Auth::Bearer(&bo.token), seen.id.as_deref()).await;

        for expected in &missed {
            assert_eq!(&on_second.next().await.unwrap().data, expected);
        }
        let live = send(&second, &bo, &conversation, "live on the second").await;
        assert_eq!(on_second.next().await.unwrap().data, live);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn typing_and_presence_cross_instances() {
        let (first, second) = two_instances().await;
        let (ana, bo, conversation) = pair(&first).await;
        let mut ana_on_first = first.open_stream(Auth::Bearer(&ana.token), None).await;

        let bo_on_second = second.open_stream(Auth::Bearer(&bo.token), None).await;
        assert_eq!(ana_on_first.next_of("presence").await.data["status"], "online");
        let path = format!("/api/v1/conversation/{conversation}/typing");
        second
            .post(&path, Some(&bo.token), &json!({"typing": true}))
            .await
            .data(StatusCode::OK);
        assert_eq!(ana_on_first.next_of("typing").await.data["userId"], bo.id.as_str());

        // Online on the first instance too; leaving the second does not make Bo offline.
        let _bo_on_first = first.open_stream(Auth::Bearer(&bo.token), None).await;
        drop(bo_on_second);
        ana_on_first.assert_no("presence", Duration::from_millis(1500)).await;
        let activity = first
            .get(&format!("/api/v1/user/last-activity?ids={}", bo.id), Some(&ana.token))
            .await;
        assert_eq!(activity.data(StatusCode::OK)["lastActivity"][&bo.id], "online");
    }
}
