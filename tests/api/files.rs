//! Files: streamed uploads, sniffed types, authorised and signed downloads, ranges, on each
//! database backend with each file store (a local folder and a real S3-compatible server).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::every_store;
use crate::helpers::{Backend, FileBackend, Reply, TestApp, TestUser, spawn_app_with_files, text};
use crate::sse::Auth;

/// A PNG's signature and header chunk, then filler: enough for the type to be sniffed.
fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    bytes.resize(size, 7);
    bytes
}

/// `size` bytes of plain text.
pub(crate) fn text_bytes(size: usize) -> Vec<u8> {
    "the quick brown fox jumps over the lazy dog\n"
        .bytes()
        .cycle()
        .take(size)
        .collect()
}

/// A part of a multipart body: form field name, file name, the client's content type, bytes.
pub(crate) struct Part<'a> {
    field: &'a str,
    file_name: &'a str,
    content_type: &'a str,
    bytes: Vec<u8>,
}

impl<'a> Part<'a> {
    /// A text field.
    fn text(field: &'a str, value: &str) -> Self {
        Self {
            field,
            file_name: "",
            content_type: "",
            bytes: value.as_bytes().to_vec(),
        }
    }

    /// This part under another field name.
    fn named(self, field: &'a str) -> Self {
        Self { field, ..self }
    }

    pub(crate) fn file(file_name: &'a str, content_type: &'a str, bytes: Vec<u8>) -> Self {
        Self {
            field: "file",
            file_name,
            content_type,
            bytes,
        }
    }
}

const BOUNDARY: &str = "chat-api-test-boundary-7MA4YWxkTrZu0gW";

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        let head = if part.file_name.is_empty() {
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                part.field
            )
        } else {
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                part.field, part.file_name, part.content_type
            )
        };
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) async fn upload(app: &TestApp, user: &TestUser, parts: &[Part<'_>]) -> Reply {
    post_form(app, user, "/api/v1/file", parts).await
}

async fn post_form(app: &TestApp, user: &TestUser, path: &str, parts: &[Part<'_>]) -> Reply {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(&user.token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(multipart(parts))
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

/// `GET path` with optional Bearer and extra headers: status, headers, bytes.
pub(crate) async fn fetch(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

pub(crate) fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> &'h str {
    headers.get(name).map_or("", |value| value.to_str().unwrap())
}

/// How many objects the app's file store holds (finished uploads; a local store's staging
/// files count too, so an upload that was not cleaned up shows).
pub(crate) async fn stored_objects(app: &TestApp) -> usize {
    match app.file_store_url.strip_prefix("s3://") {
        Some(bucket) => {
            let endpoint = app.s3_endpoint.as_deref().unwrap();
            let listing = reqwest::get(format!("{endpoint}/{bucket}?list-type=2"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            listing.matches("<Key>").count()
        }
        None => count_files(std::path::Path::new(&app.file_store_url)),
    }
}

fn count_files(folder: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { count_files(&path) } else { 1 })
        .sum()
}

async fn an_upload_is_stored_and_only_its_uploader_reads_it(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let photo = png(3000);
    let notes = text_bytes(500);

    let reply = upload(
        &app,
        &ana,
        &[
            Part::file("../../holiday/photo.png", "application/octet-stream", photo.clone()),
            Part::file("notes.txt", "text/plain", notes.clone()),
        ],
    )
    .await;

    let stored = reply.data(StatusCode::CREATED)["files"].as_array().unwrap().clone();
    let shape: Vec<(String, String, i64)> = stored
        .iter()
        .map(|file| {
            (
                text(&file["name"]),
                text(&file["contentType"]),
                file["size"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("photo.png".to_string(), "image/png".to_string(), 3000),
            ("notes.txt".to_string(), "text/plain".to_string(), 500)
        ]
    );
    let (photo_id, notes_id) = (text(&stored[0]["_id"]), text(&stored[1]["_id"]));
    let (status, headers, bytes) = fetch(&app, &format!("/api/v1/file/{photo_id}"), Some(&ana.token), &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, photo));
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-security-policy").contains("sandbox"));
    assert!(header(&headers, "content-disposition").starts_with("inline"));
    let (status, headers, bytes) = fetch(&app, &format!("/api/v1/file/{notes_id}"), Some(&ana.token), &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, notes));
    assert!(header(&headers, "content-disposition").starts_with("attachment"));
    assert!(header(&headers, "content-disposition").contains("notes.txt"));
    // Nobody else reads it, and without credentials it is refused.
    let (status, _, _) = fetch(&app, &format!("/api/v1/file/{photo_id}"), Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = fetch(&app, &format!("/api/v1/file/{photo_id}"), None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn signed_links_work_without_a_header_until_altered(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let reply = upload(&app, &ana, &[Part::file("photo.png", "image/png", png(1000))]).await;
    let file = reply.data(StatusCode::CREATED)["files"][0].clone();
    let url = text(&file["url"]);

    let (status, _, bytes) = fetch(&app, &url, None, &[]).await;

    assert_eq!((status, bytes.len()), (StatusCode::OK, 1000));
    let flipped = match url.chars().last().unwrap() {
        '0' => format!("{}1", &url[..url.len() - 1]),
        _ => format!("{}0", &url[..url.len() - 1]),
    };
    let (status, _, _) = fetch(&app, &flipped, None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an altered signature");
    let for_bo = url.replace(&format!("user={}", ana.id), &format!("user={}", bo.id));
    let (status, _, _) = fetch(&app, &for_bo, None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another user's name on Ana's signature");
    let fresh = app
        .post("/api/v1/file/urls", Some(&bo.token), &json!({"ids": [file["_id"]]}))
        .await;
    assert_eq!(fresh.data(StatusCode::OK)["urls"], json!({}), "Bo may not read it");
    let fresh = app
        .post("/api/v1/file/urls", Some(&ana.token), &json!({"ids": [file["_id"]]}))
        .await;
    let fresh_url = text(&fresh.data(StatusCode::OK)["urls"][text(&file["_id"])]);
    let (status, _, _) = fetch(&app, &fresh_url, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
}

async fn an_expired_link_is_refused(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("FILE_URL_TTL", "1")]).await;
    let ana = app.register_user("Ana").await;
    let reply = upload(&app, &ana, &[Part::file("photo.png", "image/png", png(1000))]).await;
    let url = text(&reply.data(StatusCode::CREATED)["files"][0]["url"]);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _, _) = fetch(&app, &url, None, &[]).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn downloads_honour_range_and_etag(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let content = text_bytes(1000);
    let reply = upload(&app, &ana, &[Part::file("notes.txt", "text/plain", content.clone())]).await;
    let path = format!(
        "/api/v1/file/{}",
        text(&reply.data(StatusCode::CREATED)["files"][0]["_id"])
    );

    let (status, headers, bytes) = fetch(&app, &path, Some(&ana.token), &[("range", "bytes=10-19")]).await;

    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, content[10..20]);
    assert_eq!(header(&headers, "content-range"), "bytes 10-19/1000");
    let (status, _, bytes) = fetch(&app, &path, Some(&ana.token), &[("range", "bytes=-5")]).await;
    assert_eq!((status, bytes), (StatusCode::PARTIAL_CONTENT, content[995..].to_vec()));
    let (_, headers, _) = fetch(&app, &path, Some(&ana.token), &[]).await;
    let etag = header(&headers, "etag").to_string();
    assert!(!etag.is_empty());
    let (status, _, bytes) = fetch(&app, &path, Some(&ana.token), &[("if-none-match", &etag)]).await;
    assert_eq!((status, bytes.len()), (StatusCode::NOT_MODIFIED, 0));
    let (status, _, bytes) = fetch(&app, &path, Some(&ana.token), &[("range", "bytes=5000-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "range_not_satisfiable");
}

async fn refused_uploads_keep_nothing(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("FILE_MAX_BYTES", "20000")]).await;
    let ana = app.register_user("Ana").await;

    let too_large = upload(&app, &ana, &[Part::file("big.txt", "text/plain", text_bytes(50_000))]).await;
    let html = upload(
        &app,
        &ana,
        &[Part::file(
            "innocent.png",
            "image/png",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec(),
        )],
    )
    .await;
    let binary = upload(
        &app,
        &ana,
        &[Part::file("tool.png", "image/png", b"\0\x01\x02\x03 bin".to_vec())],
    )
    .await;
    let one_bad_of_two = upload(
        &app,
        &ana,
        &[
            Part::file("fine.png", "image/png", png(1000)),
            Part::file("big.txt", "text/plain", text_bytes(50_000)),
        ],
    )
    .await;
    let empty = upload(&app, &ana, &[Part::file("empty.txt", "text/plain", Vec::new())]).await;
    let no_file = upload(
        &app,
        &ana,
        &[Part {
            field: "caption",
            file_name: "x",
            content_type: "text/plain",
            bytes: b"hello".to_vec(),
        }],
    )
    .await;
    let eleven: Vec<Part<'_>> = (0..11)
        .map(|_| Part::file("a.txt", "text/plain", text_bytes(10)))
        .collect();
    let too_many = upload(&app, &ana, &eleven).await;
    let not_multipart = app.post("/api/v1/file", Some(&ana.token), &json!({"file": "x"})).await;

    too_large.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    html.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_not_allowed");
    binary.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_not_allowed");
    one_bad_of_two.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    empty.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    no_file.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    too_many.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    not_multipart.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_eq!(stored_objects(&app).await, 0, "nothing of a refused upload is kept");
    // And the store still takes a good one.
    upload(&app, &ana, &[Part::file("fine.png", "image/png", png(1000))])
        .await
        .data(StatusCode::CREATED);
    assert_eq!(stored_objects(&app).await, 1);
}

async fn a_file_of_several_parts_streams_through(backend: Backend, files: FileBackend) {
    // 12 MiB: more than two of the store's 5 MiB parts, so it goes up as a real multipart upload.
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let content = text_bytes(12 * 1024 * 1024 + 17);

    let reply = upload(&app, &ana, &[Part::file("long.txt", "text/plain", content.clone())]).await;

    let id = text(&reply.data(StatusCode::CREATED)["files"][0]["_id"]);
    let (status, headers, bytes) = fetch(&app, &format!("/api/v1/file/{id}"), Some(&ana.token), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), content.len().to_string());
    assert!(bytes == content, "the same bytes came back");
}

/// Ana uploads a photo and returns its id.
async fn uploaded_photo(app: &TestApp, user: &TestUser) -> String {
    let reply = upload(app, user, &[Part::file("photo.png", "image/png", png(2000))]).await;
    text(&reply.data(StatusCode::CREATED)["files"][0]["_id"])
}

pub(crate) async fn send_files(
    app: &TestApp,
    user: &TestUser,
    conversation: &str,
    message: &str,
    files: &[&str],
) -> Reply {
    app.post(
        "/api/v1/message",
        Some(&user.token),
        &json!({"convo_id": conversation, "message": message, "files": files}),
    )
    .await
}

/// The first attachment's link works without a header, and was signed for `user`.
async fn assert_link_works_for(app: &TestApp, message: &Value, user: &TestUser) {
    let url = text(&message["attachments"][0]["url"]);
    assert_eq!(message["files"], json!([url]), "files repeats the links: {message}");
    assert!(
        url.contains(&format!("user={}", user.id)),
        "signed for its reader: {url}"
    );
    let (status, _, bytes) = fetch(app, &url, None, &[]).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 2000));
}

async fn a_photo_in_a_message_reaches_the_other_participant_and_nobody_else(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let photo = uploaded_photo(&app, &ana).await;
    let path = format!("/api/v1/file/{photo}");
    let (status, _, _) = fetch(&app, &path, Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not Bo's before it is sent to him");

    let sent = send_files(&app, &ana, &chat, "", &[&photo]).await;

    let message = sent.data(StatusCode::CREATED)["message"].clone();
    assert_eq!(message["content"], "");
    assert_eq!(text(&message["attachments"][0]["_id"]), photo);
    assert_eq!(message["attachments"][0]["contentType"], "image/png");
    assert_link_works_for(&app, &message, &ana).await;
    let live = bo_stream.next_of("message.created").await.data;
    assert_link_works_for(&app, &live, &bo).await;
    let listed = app.list_messages(&bo.token, &chat, "").await;
    assert_link_works_for(&app, &listed.data(StatusCode::OK)["messages"][0], &bo).await;
    let conversations = app.list_conversations(&bo.token, "").await;
    let latest = conversations.data(StatusCode::OK)["conversations"][0]["latestMessage"].clone();
    assert_link_works_for(&app, &latest, &bo).await;
    let polled = app
        .stored_events_once(&bo.token, |events| {
            events.iter().any(|event| event["event"] == "message.created")
        })
        .await;
    let polled = polled.iter().find(|event| event["event"] == "message.created").unwrap();
    assert_link_works_for(&app, &polled["data"], &bo).await;
    let (status, _, _) = fetch(&app, &path, Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::OK, "Bo is in the conversation it was sent to");
    let (status, _, _) = fetch(&app, &path, Some(&cy.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Cy is not");
    let borrowed = text(&live["attachments"][0]["url"]).replace(&bo.id, &cy.id);
    let (status, _, _) = fetch(&app, &borrowed, None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "Bo's link does not become Cy's");
    let reply = app
        .post(
            "/api/v1/message",
            Some(&bo.token),
            &json!({"convo_id": chat, "message": "nice!", "replyTo": message["_id"]}),
        )
        .await;
    let quote = reply.data(StatusCode::CREATED)["message"]["replyTo"].clone();
    assert_eq!(
        (quote["hasAttachments"].clone(), quote["attachmentType"].clone()),
        (json!(true), json!("image/png")),
        "a quote can say Photo"
    );
}

async fn only_ones_own_uploads_can_be_attached(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let bos = uploaded_photo(&app, &bo).await;
    let mine = uploaded_photo(&app, &ana).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let eleven: Vec<String> = (0..11).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();

    let foreign = send_files(&app, &ana, &chat, "look", &[&mine, &bos]).await;
    let made_up = send_files(&app, &ana, &chat, "look", &[&unknown]).await;
    let too_many = send_files(&app, &ana, &chat, "look", &eleven).await;
    let nothing = send_files(&app, &ana, &chat, "", &[]).await;

    for refused in [&foreign, &made_up, &too_many] {
        refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(refused.body["error"]["fields"]["files"].is_string(), "{}", refused.body);
    }
    nothing.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let listed = app.list_messages(&ana.token, &chat, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"], json!([]), "nothing was sent");
    let (status, _, _) = fetch(&app, &format!("/api/v1/file/{bos}"), Some(&ana.token), &[]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the refused send gave Ana nothing of Bo's"
    );
}

async fn deleting_for_everyone_takes_the_files_from_the_others(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let photo = uploaded_photo(&app, &ana).await;
    let sent = send_files(&app, &ana, &chat, "our trip", &[&photo]).await;
    let message = text(&sent.data(StatusCode::CREATED)["message"]["_id"]);
    let path = format!("/api/v1/file/{photo}");
    let (status, _, _) = fetch(&app, &path, Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::OK);

    app.delete_message(&ana, &message, "all").await.data(StatusCode::OK);

    let (status, _, _) = fetch(&app, &path, Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone for Bo");
    let (status, _, _) = fetch(&app, &path, Some(&ana.token), &[]).await;
    assert_eq!(status, StatusCode::OK, "still the uploader's");
    let listed = app.list_messages(&bo.token, &chat, "").await;
    let tombstone = listed.data(StatusCode::OK)["messages"][0].clone();
    assert_eq!(
        (tombstone["attachments"].clone(), tombstone["files"].clone()),
        (json!([]), json!([]))
    );
    let events = app
        .stored_events_once(&bo.token, |events| {
            events.iter().any(|event| event["event"] == "message.deleted")
        })
        .await;
    let created = events.iter().find(|event| event["event"] == "message.created").unwrap();
    assert_eq!(created["data"]["attachments"], json!([]), "the log no longer shows it");
}

async fn uploads_no_message_carries_are_removed_after_the_orphan_ttl(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("FILE_ORPHAN_TTL", "3")]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let kept = uploaded_photo(&app, &ana).await;
    send_files(&app, &ana, &chat, "", &[&kept])
        .await
        .data(StatusCode::CREATED);
    let orphan = uploaded_photo(&app, &ana).await;

    let mut swept = false;
    for _ in 0..100 {
        let (status, _, _) = fetch(&app, &format!("/api/v1/file/{orphan}"), Some(&ana.token), &[]).await;
        if status == StatusCode::NOT_FOUND {
            swept = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    assert!(swept, "the orphan upload was removed");
    let (status, _, _) = fetch(&app, &format!("/api/v1/file/{kept}"), Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::OK, "the sent one stays");
    let mut objects = stored_objects(&app).await;
    for _ in 0..50 {
        if objects == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        objects = stored_objects(&app).await;
    }
    assert_eq!(objects, 1, "the orphan's bytes went too");
}

async fn the_quota_counts_every_upload(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("FILE_QUOTA_BYTES", "5000")]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;

    let first = upload(&app, &ana, &[Part::file("a.txt", "text/plain", text_bytes(3000))]).await;
    let second = upload(&app, &ana, &[Part::file("b.txt", "text/plain", text_bytes(3000))]).await;
    let small = upload(&app, &ana, &[Part::file("c.txt", "text/plain", text_bytes(1500))]).await;
    let others = upload(&app, &bo, &[Part::file("d.txt", "text/plain", text_bytes(3000))]).await;

    first.data(StatusCode::CREATED);
    second.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded");
    small.data(StatusCode::CREATED);
    others.data(StatusCode::CREATED);
    assert_eq!(stored_objects(&app).await, 3, "the refused one left nothing");
}

async fn a_chatify_form_sends_text_and_files_in_one_request(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let cy = app.register_user("Cy").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let others = app.direct_conversation(&bo, &cy).await;

    let sent = post_form(
        &app,
        &ana,
        "/api/v1/message",
        &[
            Part::text("convo_id", &chat),
            Part::text("message", "the contract"),
            Part {
                field: "files",
                file_name: "contract.pdf",
                content_type: "application/pdf",
                bytes: b"%PDF-1.7\n1 0 obj\n".repeat(100),
            },
        ],
    )
    .await;
    let into_a_stranger_chat = post_form(
        &app,
        &ana,
        "/api/v1/message",
        &[
            Part::text("convo_id", &others),
            Part::file("photo.png", "image/png", png(2000)).named("files"),
        ],
    )
    .await;

    let message = sent.data(StatusCode::CREATED)["message"].clone();
    assert_eq!(message["content"], "the contract");
    assert_eq!(message["attachments"][0]["contentType"], "application/pdf");
    assert_eq!(message["attachments"][0]["name"], "contract.pdf");
    let listed = app.list_messages(&bo.token, &chat, "").await;
    let url = text(&listed.data(StatusCode::OK)["messages"][0]["attachments"][0]["url"]);
    let (status, headers, _) = fetch(&app, &url, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-disposition").starts_with("attachment"));
    into_a_stranger_chat.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(stored_objects(&app).await, 1, "the refused send kept nothing");
}

async fn a_user_has_a_bounded_number_of_uploads_running(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("FILE_MAX_CONCURRENT_UPLOADS", "1")]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    // Ana's first upload sends its head and some bytes, then waits.
    let body = multipart(&[Part::file("slow.txt", "text/plain", text_bytes(20_000))]);
    let (head, rest) = body.split_at(10_000);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    sender.send(Ok(head.to_vec())).await.unwrap();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let slow = app
        .client
        .post(app.url("/api/v1/file"))
        .bearer_auth(&ana.token)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let slow = tokio::spawn(slow);
    // Give the first time to reach the handler (a second sent before would take the slot).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!slow.is_finished(), "the first upload is still running");
    let mut refused = None;
    for _ in 0..100 {
        let second = upload(&app, &ana, &[Part::file("b.txt", "text/plain", text_bytes(100))]).await;
        if second.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(second);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    refused
        .expect("a second upload is refused while the first runs")
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    upload(&app, &bo, &[Part::file("c.txt", "text/plain", text_bytes(100))])
        .await
        .data(StatusCode::CREATED);
    sender.send(Ok(rest.to_vec())).await.unwrap();
    drop(sender);
    let finished = slow.await.unwrap().unwrap();
    assert_eq!(finished.status(), StatusCode::CREATED);
    upload(&app, &ana, &[Part::file("d.txt", "text/plain", text_bytes(100))])
        .await
        .data(StatusCode::CREATED);
}

every_store!(
    a_user_has_a_bounded_number_of_uploads_running,
    a_chatify_form_sends_text_and_files_in_one_request,
    uploads_no_message_carries_are_removed_after_the_orphan_ttl,
    the_quota_counts_every_upload,
    a_photo_in_a_message_reaches_the_other_participant_and_nobody_else,
    only_ones_own_uploads_can_be_attached,
    deleting_for_everyone_takes_the_files_from_the_others,
    an_upload_is_stored_and_only_its_uploader_reads_it,
    signed_links_work_without_a_header_until_altered,
    an_expired_link_is_refused,
    downloads_honour_range_and_etag,
    refused_uploads_keep_nothing,
    a_file_of_several_parts_streams_through,
);
