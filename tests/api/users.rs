//! `/api/v1/user`: the caller's profile, other users' profiles, and the user search.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, spawn_app, text};

// ---- small tools -----------------------------------------------------------------------

/// The names of the users of a search page, in order.
#[track_caller]
fn names(reply: &Reply) -> Vec<String> {
    let data = reply.data(StatusCode::OK);
    data["users"]
        .as_array()
        .unwrap_or_else(|| panic!("{data}"))
        .iter()
        .map(|user| text(&user["name"]))
        .collect()
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Every page of a search with `limit`, following `nextCursor`: the users of each page.
async fn all_pages(app: &TestApp, token: &str, keyword: &str, limit: u32) -> Vec<Vec<Value>> {
    let path = format!("/api/v1/user?keyword={}", encode(keyword));
    app.walk_pages(token, &path, "users", limit).await
}

/// The user's own profile: another user sees it without `email`, `messagePolicy`, `phone` and
/// `presenceStatus`.
const PROFILE_FIELDS: [&str; 11] = [
    "_id",
    "about",
    "avatarThumbnailUrl",
    "avatarUrl",
    "createdAt",
    "email",
    "messagePolicy",
    "name",
    "phone",
    "presenceStatus",
    "updatedAt",
];

#[track_caller]
fn assert_profile_fields(user: &Value) {
    let mut keys: Vec<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, PROFILE_FIELDS, "a profile has exactly these fields: {user}");
}

// ---- profiles ----------------------------------------------------------------------------

async fn getme_returns_the_user_the_token_belongs_to(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.register_user("Ana").await;
    let bia = app.register_user("Bia").await;

    // Act
    let reply = app.get_me(&bia.token).await;

    // Assert
    let user = &reply.data(StatusCode::OK)["user"];
    assert_eq!(user["_id"], bia.id.as_str());
    assert_eq!(user["name"], "Bia");
    assert_eq!(user["email"], bia.email.as_str());
    assert_profile_fields(user);
}

async fn get_user_by_id_returns_that_users_public_profile(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bia = app.register_user("Bia").await;

    // Act
    let reply = app.get_user(&ana.token, &bia.id).await;

    // Assert
    let user = &reply.data(StatusCode::OK)["user"];
    assert_eq!(user["_id"], bia.id.as_str());
    assert_eq!(user["name"], "Bia");
    let own_view = app.get_me(&bia.token).await;
    let mut own = own_view.data(StatusCode::OK)["user"].clone();
    assert_profile_fields(&own);
    assert_eq!(own["email"], bia.email.as_str(), "her own profile shows her email");
    own.as_object_mut().unwrap().remove("email");
    own.as_object_mut().unwrap().remove("messagePolicy");
    own.as_object_mut().unwrap().remove("phone");
    own.as_object_mut().unwrap().remove("presenceStatus");
    assert_eq!(
        user, &own,
        "the same profile as Bia sees herself, without her email, settings and phone (issues 9, 11)"
    );
}

async fn get_user_with_an_unknown_id_gets_404_not_found(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    for id in [Uuid::now_v7(), Uuid::nil()] {
        // Act
        let reply = app.get_user(&ana.token, &id.to_string()).await;

        // Assert
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

async fn get_user_with_an_id_that_is_no_uuid_gets_400_invalid_path(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let too_long = format!("{}0", ana.id);

    for id in ["not-a-uuid", "123", "GETME", too_long.as_str()] {
        // Act
        let reply = app.get_user(&ana.token, id).await;

        // Assert
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{id}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], "invalid_path", "{id}: {}", reply.body);
    }
}

// ---- search ------------------------------------------------------------------------------

async fn search_finds_users_by_part_of_their_name_whatever_the_case(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Searcher", "searcher@example.com").await;
    app.register_as("Mariana Souza", "mari@mail.test").await;
    app.register_as("Ana Lima", "lima@mail.test").await;
    app.register_as("Bruno Costa", "bruno@mail.test").await;
    let cases: [(&str, &[&str]); 6] = [
        ("ana", &["Ana Lima", "Mariana Souza"]),
        ("ANA", &["Ana Lima", "Mariana Souza"]),
        ("  Lima ", &["Ana Lima"]),
        ("sOuZa", &["Mariana Souza"]),
        ("o c", &["Bruno Costa"]),
        ("nobody", &[]),
    ];
    for (keyword, expected) in cases {
        // Act
        let reply = app
            .search_users(&caller.token, &format!("keyword={}", encode(keyword)))
            .await;

        // Assert
        assert_eq!(names(&reply), expected, "keyword {keyword:?}");
        assert_eq!(reply.body["data"]["nextCursor"], Value::Null);
    }
}

/// An email is found only whole, so people can find each other by address but nobody can list
/// addresses by searching for parts of them (issue 9: directory harvesting).
async fn search_finds_a_user_by_their_whole_email_only(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Searcher", "searcher@example.com").await;
    app.register_as("Zed", "zed@wonderland.test").await;
    app.register_as("Ana", "ana@mail.test").await;
    let cases: [(&str, &[&str]); 6] = [
        ("zed@wonderland.test", &["Zed"]),
        ("ZED@Wonderland.TEST", &["Zed"]),
        ("wonderland", &[]),
        ("@mail", &[]),
        (".test", &[]),
        ("ana@mail.tes", &[]),
    ];
    for (keyword, expected) in cases {
        // Act
        let reply = app
            .search_users(&caller.token, &format!("keyword={}", encode(keyword)))
            .await;

        // Assert
        assert_eq!(names(&reply), expected, "keyword {keyword:?}");
    }
}

async fn search_never_lists_the_caller(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Ana Lima", "ana.lima@mail.test").await;
    app.register_as("Ana Souza", "ana.souza@mail.test").await;
    app.register_as("Bia", "bia@mail.test").await;

    for (query, expected) in [("keyword=ana", vec!["Ana Souza"]), ("keyword=lima", vec![])] {
        // Act
        let reply = app.search_users(&caller.token, query).await;

        // Assert
        assert_eq!(names(&reply), expected, "query {query:?}");
    }
}

async fn search_keywords_match_percent_underscore_and_backslash_literally(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Searcher", "searcher@example.com").await;
    app.register_as("50% off", "fifty@mail.test").await;
    app.register_as("500 pages", "five.hundred@mail.test").await;
    app.register_as("v5_beta", "beta@mail.test").await;
    app.register_as("5x5", "fives@mail.test").await;
    app.register_as("C:\\temp", "temp@mail.test").await;
    let cases: [(&str, &[&str]); 7] = [
        ("50%", &["50% off"]),
        ("0%", &["50% off"]),
        ("%off", &[]),
        ("5_", &["v5_beta"]),
        ("_b", &["v5_beta"]),
        (":\\", &["C:\\temp"]),
        ("\\t", &["C:\\temp"]),
    ];
    for (keyword, expected) in cases {
        // Act
        let reply = app
            .search_users(&caller.token, &format!("keyword={}", encode(keyword)))
            .await;

        // Assert
        assert_eq!(names(&reply), expected, "keyword {keyword:?}");
    }
}

async fn search_returns_20_users_by_default_and_up_to_100(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Searcher", "searcher@example.com").await;
    for index in 1..=25 {
        app.register_as(&format!("User {index:02}"), &format!("user{index}@mail.test"))
            .await;
    }
    let cases: [(&str, usize, bool); 5] = [
        ("keyword=user", 20, true),
        ("keyword=user&limit=24", 24, true),
        ("keyword=user&limit=25", 25, false),
        ("keyword=user&limit=100", 25, false),
        ("keyword=user&limit=1", 1, true),
    ];
    for (query, expected, more) in cases {
        // Act
        let reply = app.search_users(&caller.token, query).await;

        // Assert
        let page = names(&reply);
        assert_eq!(page.len(), expected, "query {query:?}");
        assert_eq!(page[0], "User 01", "query {query:?}: ordered by name");
        assert_eq!(
            reply.body["data"]["nextCursor"].is_string(),
            more,
            "query {query:?}: {}",
            reply.body
        );
    }
}

async fn search_with_a_bad_limit_keyword_or_cursor_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_user("Searcher").await;
    let long_keyword = format!("keyword={}", "a".repeat(101));
    let cases: [(&str, &str, StatusCode, &str, Option<&str>); 8] = [
        (
            "limit 0",
            "limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "limit 101",
            "limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("limit"),
        ),
        (
            "a 101-character keyword",
            &long_keyword,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("keyword"),
        ),
        (
            "a word for a limit",
            "limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "a negative limit",
            "limit=-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "a limit beyond 32 bits",
            "limit=4294967296",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "a fractional limit",
            "limit=2.5",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
        (
            "a cursor that is no uuid",
            "before=abc",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            None,
        ),
    ];
    for (case, query, status, code, field) in cases {
        // Act
        let reply = app.search_users(&caller.token, query).await;

        // Assert
        assert_eq!(reply.status, status, "{case}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{case}: {}", reply.body);
        if let Some(field) = field {
            assert!(
                reply.body["error"]["fields"][field].is_string(),
                "{case} names {field}: {}",
                reply.body
            );
        }
    }
    let hundred = format!("keyword={}", "a".repeat(100));
    assert_eq!(
        names(&app.search_users(&caller.token, &hundred).await),
        Vec::<String>::new()
    );
}

async fn search_pages_through_every_match_exactly_once_in_name_order(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_as("Searcher", "searcher@example.com").await;
    for (name, email) in [
        ("Pager Eve", "eve@mail.test"),
        ("pager Ana", "ana@mail.test"),
        ("Other", "other@mail.test"),
        ("Pager Cid", "cid@mail.test"),
        ("PAGER Bob", "bob@mail.test"),
        ("Pager Dan", "dan@mail.test"),
    ] {
        app.register_as(name, email).await;
    }

    // Act
    let pages = all_pages(&app, &caller.token, "pager", 2).await;

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let listed: Vec<String> = pages.iter().flatten().map(|user| text(&user["name"])).collect();
    assert_eq!(
        listed,
        ["pager Ana", "PAGER Bob", "Pager Cid", "Pager Dan", "Pager Eve"]
    );
}

async fn a_last_page_that_is_exactly_full_has_no_next_cursor(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_user("Searcher").await;
    for name in ["Quad A", "Quad B", "Quad C", "Quad D"] {
        app.register_user(name).await;
    }

    // Act
    let pages = all_pages(&app, &caller.token, "quad", 2).await;

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2], "no empty page after a full one");
}

async fn users_sharing_one_name_are_paged_without_loss_or_repetition(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_user("Searcher").await;
    let mut registered = HashSet::new();
    for _ in 0..5 {
        registered.insert(app.register_user("Twin").await.id);
    }

    // Act
    let pages = all_pages(&app, &caller.token, "twin", 2).await;

    // Assert
    let listed: Vec<String> = pages.iter().flatten().map(|user| text(&user["_id"])).collect();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), registered);
}

both_backends!(
    an_empty_search_lists_only_the_callers_conversation_partners,
    getme_returns_the_user_the_token_belongs_to,
    get_user_by_id_returns_that_users_public_profile,
    get_user_with_an_unknown_id_gets_404_not_found,
    get_user_with_an_id_that_is_no_uuid_gets_400_invalid_path,
    search_finds_users_by_part_of_their_name_whatever_the_case,
    search_finds_a_user_by_their_whole_email_only,
    search_never_lists_the_caller,
    search_keywords_match_percent_underscore_and_backslash_literally,
    search_returns_20_users_by_default_and_up_to_100,
    search_with_a_bad_limit_keyword_or_cursor_is_refused,
    search_pages_through_every_match_exactly_once_in_name_order,
    a_last_page_that_is_exactly_full_has_no_next_cursor,
    users_sharing_one_name_are_paged_without_loss_or_repetition,
);

/// Issue 9: an empty keyword lists nobody but the caller's conversation partners, and a
/// one-letter keyword is refused, so a fresh account cannot walk the directory.
async fn an_empty_search_lists_only_the_callers_conversation_partners(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let caller = app.register_user("Ana").await;
    let partner = app.register_user("Bo").await;
    app.register_user("Cy").await;
    app.direct_conversation(&caller, &partner).await;

    // Act
    let empty = app.search_users(&caller.token, "keyword=").await;
    let absent = app.search_users(&caller.token, "").await;
    let one_letter = app.search_users(&caller.token, "keyword=c").await;
    let stranger = app.register_user("Di").await;
    let strangers_view = app.search_users(&stranger.token, "").await;

    // Assert
    assert_eq!(names(&empty), ["Bo"]);
    assert_eq!(names(&absent), ["Bo"]);
    one_letter.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(names(&strangers_view).is_empty(), "a fresh account lists nobody");
}
