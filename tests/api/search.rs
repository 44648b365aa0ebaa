//! Full-text message search, in every conversation or in one.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app, spawn_app_with};

fn contents(reply: &crate::helpers::Reply) -> Vec<String> {
    reply.data(StatusCode::OK)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["content"].as_str().unwrap().to_string())
        .collect()
}

async fn search(app: &TestApp, user: &TestUser, path: &str) -> crate::helpers::Reply {
    app.get(path, Some(&user.token)).await
}

async fn words_are_found_case_insensitively_in_the_callers_conversations_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let carl = app.register_user("Carl").await;
    let with_bo = app.direct_conversation(&ana, &bo).await;
    let with_carl = app.direct_conversation(&ana, &carl).await;
    let without_ana = app.direct_conversation(&bo, &carl).await;
    app.send_text(&ana, &with_bo, "Pizza tonight?").await;
    app.send_text(&bo, &with_bo, "no pizza, sushi").await;
    app.send_text(&carl, &with_carl, "PIZZA with pineapple").await;
    app.send_text(&bo, &without_ana, "secret pizza plans").await;
    app.send_text(&ana, &with_bo, "nothing to see").await;

    let everywhere = search(&app, &ana, "/api/v1/message/search?q=pizza").await;
    assert_eq!(
        contents(&everywhere),
        ["PIZZA with pineapple", "no pizza, sushi", "Pizza tonight?"],
        "newest first"
    );
    let in_one = search(&app, &ana, &format!("/api/v1/message/{with_bo}/search?q=PIZZA")).await;
    assert_eq!(contents(&in_one), ["no pizza, sushi", "Pizza tonight?"]);
    let every_word = search(&app, &ana, "/api/v1/message/search?q=pizza%20sushi").await;
    assert_eq!(contents(&every_word), ["no pizza, sushi"], "every word must occur");
    let first = &everywhere.data(StatusCode::OK)["messages"][0];
    assert_eq!(
        first["conversation"],
        with_carl.as_str(),
        "each result names its conversation"
    );
}

async fn deleted_and_hidden_messages_are_never_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let deleted = app.send_text(&ana, &conversation, "banana bread").await;
    let hidden = app.send_text(&bo, &conversation, "banana split").await;
    app.send_text(&bo, &conversation, "banana pancakes").await;
    app.delete_message(&ana, &deleted, "all").await.data(StatusCode::OK);
    app.post(
        "/api/v1/message/delete",
        Some(&ana.token),
        &json!({"convo_id": conversation, "ids": [hidden]}),
    )
    .await
    .data(StatusCode::OK);

    let for_ana = search(&app, &ana, "/api/v1/message/search?q=banana").await;
    let for_bo = search(&app, &bo, "/api/v1/message/search?q=banana").await;

    assert_eq!(contents(&for_ana), ["banana pancakes"]);
    assert_eq!(
        contents(&for_bo),
        ["banana pancakes", "banana split"],
        "hiding is Ana's alone"
    );
}

async fn an_edit_changes_what_is_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    let message = app.send_text(&ana, &conversation, "meet at noon").await;

    app.patch(
        &format!("/api/v1/message/{message}"),
        Some(&ana.token),
        &json!({"message": "meet at dusk"}),
    )
    .await
    .data(StatusCode::OK);

    assert!(contents(&search(&app, &bo, "/api/v1/message/search?q=noon").await).is_empty());
    assert_eq!(
        contents(&search(&app, &bo, "/api/v1/message/search?q=dusk").await),
        ["meet at dusk"]
    );
}

async fn search_pages_and_refuses_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let carl = app.register_user("Carl").await;
    let conversation = app.direct_conversation(&ana, &bo).await;
    for index in 0..5 {
        app.send_text(&ana, &conversation, &format!("note {index}")).await;
    }

    let pages = app
        .walk_pages(&bo.token, "/api/v1/message/search?q=note", "messages", 2)
        .await;
    let seen: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|message: &Value| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["note 4", "note 3", "note 2", "note 1", "note 0"]);

    for bad in ["q=", "q=%20%20", &format!("q={}", "a".repeat(201)), "q=x&limit=0"] {
        search(&app, &bo, &format!("/api/v1/message/search?{bad}"))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    search(&app, &bo, "/api/v1/message/search")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    search(&app, &carl, &format!("/api/v1/message/{conversation}/search?q=note"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    // FTS syntax in the words is taken literally.
    let odd = search(&app, &bo, "/api/v1/message/search?q=%22note%20OR%20NEAR(x*").await;
    assert_eq!(odd.status, StatusCode::OK, "{}", odd.body);
}

/// Search has two plans: a word with few matches is read through the full-text index, a
/// common one by reading the caller's messages newest first (above
/// `SEARCH_COMMON_WORD_MATCHES`). Both must give the same pages.
async fn common_and_rare_words_give_the_same_pages(backend: Backend) {
    // Index only; newest first (the window holds everything); newest first in a window of
    // three messages, then the older matches sorted.
    for (common_above, window) in [("1000", "1000"), ("2", "1000"), ("2", "3")] {
        let settings = [
            ("SEARCH_COMMON_WORD_MATCHES", common_above),
            ("SEARCH_NEWEST_FIRST_WINDOW", window),
        ];
        let app = spawn_app_with(backend, &settings).await;
        let ana = app.register_user("Ana").await;
        let bo = app.register_user("Bo").await;
        let carl = app.register_user("Carl").await;
        let with_bo = app.direct_conversation(&ana, &bo).await;
        let with_carl = app.direct_conversation(&ana, &carl).await;
        let without_ana = app.direct_conversation(&bo, &carl).await;
        let mut sent = Vec::new();
        for index in 0..9 {
            let (sender, conversation) = if index % 3 == 0 {
                (&carl, &with_carl)
            } else {
                (&bo, &with_bo)
            };
            sent.push(app.send_text(sender, conversation, &format!("soup {index}")).await);
            app.send_text(&bo, &without_ana, &format!("soup elsewhere {index}"))
                .await;
            app.send_text(sender, conversation, "salad").await;
        }
        // "soup 4" deleted for everyone, "soup 6" hidden for Ana.
        app.delete_message(&bo, &sent[4], "all").await.data(StatusCode::OK);
        app.post(
            "/api/v1/message/delete",
            Some(&ana.token),
            &json!({"convo_id": with_carl, "ids": [sent[6]]}),
        )
        .await
        .data(StatusCode::OK);

        let found = |path: String| {
            let (app, token) = (&app, ana.token.clone());
            async move {
                let pages = app.walk_pages(&token, &path, "messages", 2).await;
                pages
                    .iter()
                    .flatten()
                    .map(|message: &Value| message["content"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            found("/api/v1/message/search?q=soup".into()).await,
            ["soup 8", "soup 7", "soup 5", "soup 3", "soup 2", "soup 1", "soup 0"],
            "common above {common_above}, window {window}"
        );
        assert_eq!(
            found(format!("/api/v1/message/{with_bo}/search?q=soup")).await,
            ["soup 8", "soup 7", "soup 5", "soup 2", "soup 1"],
            "common above {common_above}, window {window}"
        );
        assert_eq!(
            found(format!("/api/v1/message/{with_carl}/search?q=soup")).await,
            ["soup 3", "soup 0"]
        );
        // In one conversation, the cursor must be a message of that conversation.
        search(
            &app,
            &ana,
            &format!("/api/v1/message/{with_bo}/search?q=soup&before={}", sent[3]),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

both_backends!(
    words_are_found_case_insensitively_in_the_callers_conversations_only,
    deleted_and_hidden_messages_are_never_found,
    an_edit_changes_what_is_found,
    search_pages_and_refuses_bad_input,
    common_and_rare_words_give_the_same_pages,
);
