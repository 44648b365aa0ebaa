//! The address book: contacts private to their owner, normalised emails and phones matched
//! against registered users at every read, idempotent batch imports, paging, bounds.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{Backend, Reply, TestApp, TestUser, spawn_app, spawn_app_with, text};
use crate::sse::Auth;

const CONTACTS: &str = "/api/v1/contact";
const BATCH: &str = "/api/v1/contact/batch";

fn value(value: &str) -> Value {
    json!({ "value": value })
}

/// The smallest valid entry: a first name and one email, both made of `tag`.
fn entry(tag: &str) -> Value {
    json!({ "firstName": tag, "email": [value(&format!("{tag}@example.com"))] })
}

async fn create(app: &TestApp, user: &TestUser, body: &Value) -> Reply {
    app.post(CONTACTS, Some(&user.token), body).await
}

/// Creates a contact as `user` and returns it.
async fn created(app: &TestApp, user: &TestUser, body: &Value) -> Value {
    create(app, user, body).await.data(StatusCode::CREATED)["contact"].clone()
}

async fn get_contact(app: &TestApp, user: &TestUser, id: &str) -> Reply {
    app.get(&format!("{CONTACTS}/{id}"), Some(&user.token)).await
}

/// `user`'s contact `id`, which must be there.
async fn contact(app: &TestApp, user: &TestUser, id: &str) -> Value {
    get_contact(app, user, id).await.data(StatusCode::OK)["contact"].clone()
}

async fn patch_contact(app: &TestApp, user: &TestUser, id: &str, body: &Value) -> Reply {
    app.patch(&format!("{CONTACTS}/{id}"), Some(&user.token), body).await
}

async fn delete_contact(app: &TestApp, user: &TestUser, id: &str) -> Reply {
    app.call(Method::DELETE, &format!("{CONTACTS}/{id}"), Some(&user.token), None)
        .await
}

async fn batch(app: &TestApp, user: &TestUser, entries: &[Value]) -> Reply {
    app.post(BATCH, Some(&user.token), &json!({ "contacts": entries }))
        .await
}

/// Every contact of `user`, in list order, through every page.
async fn all_contacts(app: &TestApp, user: &TestUser) -> Vec<Value> {
    app.walk_pages(&user.token, CONTACTS, "contacts", 100).await.concat()
}

fn ids(contacts: &[Value]) -> Vec<String> {
    contacts.iter().map(|contact| text(&contact["_id"])).collect()
}

/// The `matchedUserId` of each of `contact`'s emails (`list` "email") or phones ("phone").
fn matches(contact: &Value, list: &str) -> Vec<Value> {
    contact[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} list: {contact}"))
        .iter()
        .map(|value| value["matchedUserId"].clone())
        .collect()
}

async fn set_phone(app: &TestApp, user: &TestUser, phone: Value) {
    app.patch("/api/v1/user/me", Some(&user.token), &json!({ "phone": phone }))
        .await
        .data(StatusCode::OK);
}

async fn the_owners_other_devices_follow_every_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    app.direct_conversation(&ana, &bo).await;
    let mut other_device = app.open_stream(Auth::Bearer(&ana.token), None).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;

    let made = created(&app, &ana, &entry("dora")).await;
    let told = other_device.next_of("contact.created").await.data;
    assert_eq!(told["contact"], made);
    let reply = batch(&app, &ana, &[entry("dora"), entry("eli")]).await;
    reply.data(StatusCode::OK);
    let told = other_device.next_of("contact.created").await.data;
    assert_eq!(told["contact"]["firstName"], "eli", "only the new entry is announced");
    let id = text(&made["_id"]);
    patch_contact(&app, &ana, &id, &json!({"company": "Atelier"}))
        .await
        .data(StatusCode::OK);
    let told = other_device.next_of("contact.updated").await.data;
    assert_eq!(told["contact"]["company"], "Atelier");
    delete_contact(&app, &ana, &id).await.data(StatusCode::OK);
    assert_eq!(other_device.next_of("contact.deleted").await.data["contactId"], id);

    // Nobody else hears of them: Bo's stream carries Ana's next message and nothing before.
    let conversation = app.direct_conversation(&ana, &bo).await;
    app.send_text(&ana, &conversation, "marker").await;
    let seen = bo_stream
        .next_until(|event| event.event == "message.created" && event.data["content"] == "marker")
        .await;
    assert!(
        !seen.iter().any(|event| event.event.starts_with("contact.")),
        "{seen:?}"
    );
}

async fn a_contact_is_stored_normalised_and_read_back(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;

    // Act
    let reply = create(
        &app,
        &ana,
        &json!({
            "first_name": "  Bea ",
            "last_name": "Lima",
            "company": "Atelier",
            "email": [{"type": "work", "value": " Bea.Lima@Example.COM "}, value("bea@home.example.com")],
            "phone": [value("+44 20 7946 0958")],
        }),
    )
    .await;

    // Assert
    let stored = reply.data(StatusCode::CREATED)["contact"].clone();
    assert_eq!(
        (&stored["firstName"], &stored["lastName"], &stored["company"]),
        (&json!("Bea"), &json!("Lima"), &json!("Atelier"))
    );
    assert_eq!(
        stored["email"],
        json!([
            {"type": "work", "value": "bea.lima@example.com", "matchedUserId": null},
            {"type": "other", "value": "bea@home.example.com", "matchedUserId": null},
        ])
    );
    assert_eq!(
        stored["phone"],
        json!([{"type": "other", "value": "+442079460958", "matchedUserId": null}])
    );
    assert!(stored["createdAt"].is_string() && stored["updatedAt"].is_string());
    let id = text(&stored["_id"]);
    assert_eq!(contact(&app, &ana, &id).await, stored, "read back as created");
    assert_eq!(all_contacts(&app, &ana).await, [stored], "and listed");
}

async fn invalid_contacts_are_refused_naming_every_failing_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let good_phone = value("+442079460958");
    let cases = [
        ("nothing", json!({}), vec!["email", "firstName", "lastName", "phone"]),
        (
            "no name",
            json!({"company": "Atelier", "phone": [good_phone]}),
            vec!["firstName", "lastName"],
        ),
        (
            "no email or phone",
            json!({"firstName": "Bea", "email": [], "phone": null}),
            vec!["email", "phone"],
        ),
        (
            "a bad phone, third of three",
            json!({"firstName": "Bea", "phone": [good_phone, value("+1 415 555 2671"), value("020 7946 0958")]}),
            vec!["phone[2].value"],
        ),
        (
            "a bad email",
            json!({"lastName": "Lima", "email": [value("bea@")]}),
            vec!["email[0].value"],
        ),
        (
            "eleven emails",
            json!({"lastName": "Lima", "email": vec![value("bea@example.com"); 11]}),
            vec!["email"],
        ),
        (
            "eleven phones",
            json!({"lastName": "Lima", "phone": vec![good_phone.clone(); 11]}),
            vec!["phone"],
        ),
        (
            "names, company and type too long",
            json!({
                "firstName": "x".repeat(101),
                "lastName": "y".repeat(101),
                "company": "z".repeat(101),
                "phone": [{"type": "t".repeat(31), "value": "+442079460958"}],
            }),
            vec!["company", "firstName", "lastName", "phone[0].type"],
        ),
    ];
    for (case, body, expected) in cases {
        let reply = create(&app, &ana, &body).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&String> = reply.body["error"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("{case}: no fields: {}", reply.body))
            .keys()
            .collect();
        assert_eq!(fields, expected, "{case}");
    }
    assert!(all_contacts(&app, &ana).await.is_empty(), "nothing was stored");
}

async fn a_batch_holds_1_to_500_entries(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let many: Vec<Value> = (0..501).map(|n| json!({"firstName": n.to_string()})).collect();

    for (case, entries) in [("501 entries", many), ("no entries", Vec::new())] {
        let reply = batch(&app, &ana, &entries).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            reply.body["error"]["fields"]["contacts"].is_string(),
            "{case}: {}",
            reply.body
        );
    }
    app.post(BATCH, Some(&ana.token), &json!({}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(all_contacts(&app, &ana).await.is_empty());
}

async fn another_users_contact_answers_404_and_stays_as_it_was(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (ana, eve) = (app.register_user("Ana").await, app.register_user("Eve").await);
    let stored = created(&app, &ana, &entry("bea")).await;
    let id = text(&stored["_id"]);
    let unknown = Uuid::now_v7().to_string();

    // Act and assert
    for target in [&id, &unknown] {
        get_contact(&app, &eve, target)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        patch_contact(&app, &eve, target, &json!({"firstName": "Mallory"}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        delete_contact(&app, &eve, target)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert!(all_contacts(&app, &eve).await.is_empty(), "Eve lists none of Ana's");
    assert_eq!(contact(&app, &ana, &id).await, stored, "Ana's contact is unchanged");
}

async fn emails_and_phones_match_registered_users_however_written(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    set_phone(&app, &bo, json!("+44 20 7946 0958")).await;

    // Act
    let stored = created(
        &app,
        &ana,
        &json!({
            "firstName": "Bo",
            "email": [value(&bo.email.to_uppercase()), value("nobody@example.com")],
            "phone": [value("+442079460958")],
        }),
    )
    .await;

    // Assert
    assert_eq!(matches(&stored, "email"), [json!(bo.id), Value::Null]);
    assert_eq!(matches(&stored, "phone"), [json!(bo.id)]);
    let shown = stored["email"][0].as_object().unwrap();
    let mut keys: Vec<&String> = shown.keys().collect();
    keys.sort();
    assert_eq!(keys, ["matchedUserId", "type", "value"], "nothing of Bo but his id");
    let listed = all_contacts(&app, &ana).await;
    assert_eq!(matches(&listed[0], "phone"), [json!(bo.id)], "the list matches too");
}

async fn a_user_who_registers_later_is_matched_from_then_on(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let address = format!("cy.{}@example.com", Uuid::now_v7().simple());
    let stored = created(&app, &ana, &json!({"firstName": "Cy", "email": [value(&address)]})).await;
    let id = text(&stored["_id"]);
    assert_eq!(matches(&stored, "email"), [Value::Null], "nobody has it yet");

    // Act
    let cy = app.register_as("Cy", &address.to_uppercase()).await;

    // Assert
    let now = contact(&app, &ana, &id).await;
    assert_eq!(matches(&now, "email"), [json!(cy.id)]);
    assert_eq!(
        now["updatedAt"], stored["updatedAt"],
        "the contact itself did not change"
    );
}

async fn a_phone_change_moves_the_match(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    set_phone(&app, &bo, json!("+442079460958")).await;
    let stored = created(
        &app,
        &ana,
        &json!({"firstName": "Bo", "phone": [value("+44 20 7946 0958"), value("+1 (415) 555-2671")]}),
    )
    .await;
    let id = text(&stored["_id"]);
    assert_eq!(matches(&stored, "phone"), [json!(bo.id), Value::Null]);

    // Act and assert: the match follows Bo's phone, the contact stays as it is.
    set_phone(&app, &bo, json!("+1 415 555 2671")).await;
    assert_eq!(
        matches(&contact(&app, &ana, &id).await, "phone"),
        [Value::Null, json!(bo.id)]
    );
    set_phone(&app, &bo, Value::Null).await;
    assert_eq!(
        matches(&contact(&app, &ana, &id).await, "phone"),
        [Value::Null, Value::Null]
    );
    set_phone(&app, &bo, json!("+442079460958")).await;
    let now = contact(&app, &ana, &id).await;
    assert_eq!(matches(&now, "phone"), [json!(bo.id), Value::Null]);
    assert_eq!(now["phone"][0]["value"], "+442079460958");
}

async fn a_block_either_way_hides_the_match(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let (bo, cy, dan) = (
        app.register_user("Bo").await,
        app.register_user("Cy").await,
        app.register_user("Dan").await,
    );
    let stored = created(
        &app,
        &ana,
        &json!({"firstName": "Friends", "email": [value(&bo.email), value(&cy.email), value(&dan.email)]}),
    )
    .await;
    let id = text(&stored["_id"]);
    assert_eq!(matches(&stored, "email"), [json!(bo.id), json!(cy.id), json!(dan.id)]);
    let block = |blocker: &TestUser, blocked: &TestUser, route: &'static str| {
        let (app, token, ids) = (&app, blocker.token.clone(), json!({"ids": [blocked.id]}));
        async move {
            let reply = app.post(&format!("/api/v1/user/{route}"), Some(&token), &ids).await;
            assert!(reply.status.is_success(), "{route}: {}", reply.body);
        }
    };

    // Act: Ana blocks Bo; Cy blocks Ana.
    block(&ana, &bo, "block").await;
    block(&cy, &ana, "block").await;

    // Assert
    assert_eq!(
        matches(&contact(&app, &ana, &id).await, "email"),
        [Value::Null, Value::Null, json!(dan.id)]
    );
    block(&ana, &bo, "unblock").await;
    assert_eq!(
        matches(&contact(&app, &ana, &id).await, "email"),
        [json!(bo.id), Value::Null, json!(dan.id)],
        "an unblock matches again"
    );
}

async fn a_batch_stores_the_good_entries_and_reports_the_bad_by_index(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let entries = [
        entry("first"),
        json!({"firstName": "Bad", "phone": [value("+442079460958"), value("not a phone")]}),
        json!({"last_name": "Third", "phone": [value("+1 415 555 2671")]}),
        json!(42),
    ];

    // Act
    let reply = batch(&app, &ana, &entries).await;

    // Assert
    let data = reply.data(StatusCode::OK).clone();
    let contacts = data["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 4, "one place per entry: {data}");
    assert_eq!(contacts[0]["firstName"], "first");
    assert_eq!(contacts[2]["lastName"], "Third");
    assert!(contacts[1].is_null() && contacts[3].is_null(), "{data}");
    assert_eq!(data["created"], 2);
    let failed = data["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{data}");
    assert_eq!(
        (&failed[0]["index"], &failed[0]["code"]),
        (&json!(1), &json!("validation_failed"))
    );
    assert!(failed[0]["fields"]["phone[1].value"].is_string(), "{data}");
    assert_eq!(
        (&failed[1]["index"], &failed[1]["code"]),
        (&json!(3), &json!("validation_failed"))
    );
    let listed = all_contacts(&app, &ana).await;
    let mut stored = ids(&listed);
    stored.sort();
    let mut expected = vec![text(&contacts[0]["_id"]), text(&contacts[2]["_id"])];
    expected.sort();
    assert_eq!(stored, expected, "the good entries, and only they, were stored");
}

async fn sending_the_same_entries_again_creates_nothing_new(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let entries = [entry("one"), entry("two"), entry("three"), entry("one")];
    let first = batch(&app, &ana, &entries).await.data(StatusCode::OK).clone();
    assert_eq!(first["created"], 3, "an entry given twice is one contact: {first}");
    let first_ids = ids(first["contacts"].as_array().unwrap());
    assert_eq!(first_ids[0], first_ids[3]);

    // Act
    let again = batch(&app, &ana, &entries).await.data(StatusCode::OK).clone();
    let single = create(&app, &ana, &entry("two")).await;

    // Assert
    assert_eq!(again["created"], 0);
    assert_eq!(
        ids(again["contacts"].as_array().unwrap()),
        first_ids,
        "the same contacts"
    );
    assert_eq!(
        text(&single.data(StatusCode::OK)["contact"]["_id"]),
        first_ids[1],
        "POST /contact finds it too, with 200"
    );
    assert_eq!(all_contacts(&app, &ana).await.len(), 3);
    // A different entry is a new contact.
    created(&app, &ana, &entry("four")).await;
    assert_eq!(all_contacts(&app, &ana).await.len(), 4);
}

async fn contacts_are_listed_most_recently_changed_first_in_pages(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(text(&created(&app, &ana, &entry(&format!("c{n}"))).await["_id"]));
    }

    // Act and assert: newest first, two at a time.
    let pages = app.walk_pages(&ana.token, CONTACTS, "contacts", 2).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(ids(&pages.concat()), newest_first);

    // A change moves a contact to the front, and `updatedAfter` keeps only it.
    let before_edit = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    patch_contact(&app, &ana, &made[0], &json!({"company": "Atelier"}))
        .await
        .data(StatusCode::OK);
    assert_eq!(ids(&all_contacts(&app, &ana).await)[0], made[0]);
    let changed = app
        .get(&format!("{CONTACTS}?updatedAfter={before_edit}"), Some(&ana.token))
        .await;
    assert_eq!(
        ids(changed.data(StatusCode::OK)["contacts"].as_array().unwrap()),
        [made[0].clone()]
    );
    for bad in ["limit=0", "limit=101", "before=garbage", "updatedAfter=yesterday"] {
        app.get(&format!("{CONTACTS}?{bad}"), Some(&ana.token))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

async fn a_change_replaces_what_it_names_and_must_keep_a_name_and_a_way_to_reach(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let stored = created(
        &app,
        &ana,
        &json!({"firstName": "Bea", "lastName": "Lima", "email": [value("bea@example.com")]}),
    )
    .await;
    let id = text(&stored["_id"]);

    // Act
    let changed = patch_contact(
        &app,
        &ana,
        &id,
        &json!({"first_name": null, "phone": [{"type": "mobile", "value": "+44 20 7946 0958"}]}),
    )
    .await;

    // Assert
    let now = changed.data(StatusCode::OK)["contact"].clone();
    assert_eq!((&now["firstName"], &now["lastName"]), (&Value::Null, &json!("Lima")));
    assert_eq!(now["email"], stored["email"], "absent: unchanged");
    assert_eq!(
        now["phone"],
        json!([{"type": "mobile", "value": "+442079460958", "matchedUserId": null}])
    );
    assert_ne!(now["updatedAt"], stored["updatedAt"]);
    let refusals = [
        (json!({"lastName": ""}), vec!["firstName", "lastName"]),
        (json!({"email": null, "phone": []}), vec!["email", "phone"]),
        (json!({"phone": [value("+44 12")]}), vec!["phone[0].value"]),
    ];
    for (body, expected) in refusals {
        let reply = patch_contact(&app, &ana, &id, &body).await;
        reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&String> = reply.body["error"]["fields"].as_object().unwrap().keys().collect();
        assert_eq!(fields, expected, "{body}");
    }
    assert_eq!(contact(&app, &ana, &id).await, now, "a refused change changes nothing");
    let same = patch_contact(&app, &ana, &id, &json!({"lastName": "Lima"})).await;
    assert_eq!(
        same.data(StatusCode::OK)["contact"]["updatedAt"],
        now["updatedAt"],
        "nothing changed, nothing written"
    );
}

async fn a_deleted_contact_is_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let kept = text(&created(&app, &ana, &entry("kept")).await["_id"]);
    let gone = text(&created(&app, &ana, &entry("gone")).await["_id"]);

    let reply = delete_contact(&app, &ana, &gone).await;

    assert_eq!(reply.data(StatusCode::OK)["contactId"], gone.as_str());
    get_contact(&app, &ana, &gone)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    delete_contact(&app, &ana, &gone)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(ids(&all_contacts(&app, &ana).await), [kept]);
    // Its entry, sent again, makes a new contact.
    let again = created(&app, &ana, &entry("gone")).await;
    assert_ne!(text(&again["_id"]), gone);
}

async fn an_address_book_holds_at_most_10000_contacts(backend: Backend) {
    // Arrange: 20 batches of 500.
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    for round in 0..20 {
        let entries: Vec<Value> = (0..500).map(|n| entry(&format!("c{round}x{n}"))).collect();
        let reply = batch(&app, &ana, &entries).await;
        assert_eq!(reply.data(StatusCode::OK)["created"], 500, "round {round}");
    }

    // Act
    let full = batch(&app, &ana, &[entry("c0x0"), entry("one-more")]).await;
    let single = create(&app, &ana, &entry("one-more")).await;

    // Assert
    let data = full.data(StatusCode::OK);
    assert!(
        data["contacts"][0].is_object(),
        "an entry stored already is found: {data}"
    );
    assert!(data["contacts"][1].is_null());
    assert_eq!(
        (&data["failed"][0]["index"], &data["failed"][0]["code"]),
        (&json!(1), &json!("quota_exceeded"))
    );
    single.assert_error(StatusCode::CONFLICT, "quota_exceeded");
    let first = text(&data["contacts"][0]["_id"]);
    delete_contact(&app, &ana, &first).await.data(StatusCode::OK);
    created(&app, &ana, &entry("one-more")).await;
}

async fn contact_writes_have_a_budget_of_their_own(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &[("RATE_LIMITS", "on"), ("RATE_LIMIT_CONTACTS", "1/h,2")]).await;
    let ana = app.register_user("Ana").await;
    let id = text(&created(&app, &ana, &entry("one")).await["_id"]);
    batch(&app, &ana, &[entry("two"), entry("three")])
        .await
        .data(StatusCode::OK);

    // Act
    let refused = patch_contact(&app, &ana, &id, &json!({"company": "Atelier"})).await;

    // Assert
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let policy = refused
        .headers
        .get("ratelimit-policy")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(policy.starts_with("\"contacts\""), "{policy}");
    assert_eq!(all_contacts(&app, &ana).await.len(), 3, "reads are not counted");
    assert!(
        contact(&app, &ana, &id).await["company"].is_null(),
        "the refused change was not made"
    );
}

both_backends!(
    the_owners_other_devices_follow_every_change,
    a_contact_is_stored_normalised_and_read_back,
    invalid_contacts_are_refused_naming_every_failing_field,
    a_batch_holds_1_to_500_entries,
    another_users_contact_answers_404_and_stays_as_it_was,
    emails_and_phones_match_registered_users_however_written,
    a_user_who_registers_later_is_matched_from_then_on,
    a_phone_change_moves_the_match,
    a_block_either_way_hides_the_match,
    a_batch_stores_the_good_entries_and_reports_the_bad_by_index,
    sending_the_same_entries_again_creates_nothing_new,
    contacts_are_listed_most_recently_changed_first_in_pages,
    a_change_replaces_what_it_names_and_must_keep_a_name_and_a_way_to_reach,
    a_deleted_contact_is_gone,
    an_address_book_holds_at_most_10000_contacts,
    contact_writes_have_a_budget_of_their_own,
);
