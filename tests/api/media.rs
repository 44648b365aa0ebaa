//! Photos (sizes, thumbnails, EXIF, decompression bombs), the two-step upload, and messages
//! that point at URLs, on each database backend with each file store.

use std::io::Cursor;

use image::{DynamicImage, ImageEncoder, ImageFormat};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::files::{Part, fetch, header, send_files, stored_objects, text_bytes, upload};
use crate::helpers::{Backend, FileBackend, TestApp, TestUser, spawn_app, spawn_app_with_files, text};
use crate::sse::Auth;
use crate::{both_backends, every_store};

/// A `width` x `height` JPEG whose EXIF says "rotate 90° clockwise to show" (orientation 6),
/// as a phone held upright writes it.
fn sideways_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut bytes);
    // A little-endian TIFF directory with a single entry: Orientation (0x0112) = 6.
    let mut exif = b"II\x2a\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    exif.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
    encoder.set_exif_metadata(exif).unwrap();
    let picture = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 90, 200]));
    encoder
        .write_image(picture.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    bytes
}

fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::new_rgba8(width, height)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

/// A GIF of a few dozen bytes whose header declares a 60,000 x 60,000 picture: 3.6 billion
/// pixels, gigabytes once decoded.
fn gif_bomb() -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::new_rgb8(1, 1)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Gif)
        .unwrap();
    // The logical screen descriptor follows the 6-byte signature: width, height (u16 LE).
    bytes[6..10].copy_from_slice(&[0x60, 0xEA, 0x60, 0xEA]);
    bytes
}

fn has_exif(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|window| window == b"Exif\0\0")
}

async fn a_photo_gets_its_size_and_an_upright_thumbnail_without_exif(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let original = sideways_jpeg(640, 320);
    assert!(has_exif(&original), "the fixture carries EXIF");

    let reply = upload(
        &app,
        &ana,
        &[
            Part::file("photo.jpg", "image/jpeg", original.clone()),
            Part::file("sticker.png", "image/png", png_with_alpha(100, 50)),
            Part::file("notes.txt", "text/plain", text_bytes(300)),
        ],
    )
    .await;

    let stored = reply.data(StatusCode::CREATED)["files"].clone();
    let photo = &stored[0];
    assert_eq!(
        (photo["width"].clone(), photo["height"].clone()),
        (json!(320), json!(640)),
        "the size of the upright picture: {photo}"
    );
    let thumbnail_url = text(&photo["thumbnailUrl"]);
    let (status, headers, thumbnail) = fetch(&app, &thumbnail_url, None, &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the signed thumbnail link works without a header"
    );
    assert_eq!(header(&headers, "content-type"), "image/jpeg");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(!has_exif(&thumbnail), "the thumbnail carries no EXIF");
    let decoded = image::load_from_memory(&thumbnail).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (160, 320),
        "upright, 320 px at most"
    );
    let (_, _, bytes) = fetch(&app, &text(&photo["url"]), None, &[]).await;
    assert_eq!(bytes, original, "the file itself is kept byte for byte");

    let sticker = &stored[1];
    assert_eq!(
        (sticker["width"].clone(), sticker["height"].clone()),
        (json!(100), json!(50))
    );
    let (status, headers, _) = fetch(&app, &text(&sticker["thumbnailUrl"]), None, &[]).await;
    assert_eq!(
        (status, header(&headers, "content-type")),
        (StatusCode::OK, "image/png"),
        "transparency is kept"
    );
    let notes = &stored[2];
    assert_eq!(
        (notes["width"].clone(), notes["thumbnailUrl"].clone()),
        (Value::Null, Value::Null)
    );
    let notes_id = text(&notes["_id"]);
    let (status, _, _) = fetch(
        &app,
        &format!("/api/v1/file/{notes_id}/thumbnail"),
        Some(&ana.token),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no thumbnail for a text file");

    // The thumbnail is read by the same rule as the file.
    let photo_id = text(&photo["_id"]);
    let path = format!("/api/v1/file/{photo_id}/thumbnail");
    let (status, headers, _) = fetch(&app, &path, Some(&ana.token), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let etag = header(&headers, "etag").to_string();
    let (status, _, _) = fetch(&app, &path, Some(&ana.token), &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = fetch(&app, &path, Some(&bo.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not Bo's");
    let chat = app.direct_conversation(&ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    send_files(&app, &ana, &chat, "look", &[&photo_id])
        .await
        .data(StatusCode::CREATED);
    let live = bo_stream.next_of("message.created").await.data;
    let bo_thumbnail = text(&live["attachments"][0]["thumbnailUrl"]);
    assert!(
        bo_thumbnail.contains(&format!("user={}", bo.id)),
        "signed for Bo: {bo_thumbnail}"
    );
    let (status, _, bytes) = fetch(&app, &bo_thumbnail, None, &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, thumbnail));
}

async fn a_decompression_bomb_is_refused(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[("IMAGE_MAX_PIXELS", "10000")]).await;
    let ana = app.register_user("Ana").await;

    let bomb = upload(&app, &ana, &[Part::file("tiny.gif", "image/gif", gif_bomb())]).await;
    bomb.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    let big = upload(
        &app,
        &ana,
        &[
            Part::file("fine.png", "image/png", png_with_alpha(100, 100)),
            Part::file("big.png", "image/png", png_with_alpha(101, 100)),
        ],
    )
    .await;
    big.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    assert_eq!(stored_objects(&app).await, 0, "nothing of a refused upload is kept");

    let fine = upload(
        &app,
        &ana,
        &[Part::file("fine.png", "image/png", png_with_alpha(100, 100))],
    )
    .await;
    assert_eq!(fine.data(StatusCode::CREATED)["files"][0]["width"], 100);
}

/// `PUT bytes` to an `uploadUrl`: an S3 presigned URL, or a path on the app.
async fn put_bytes(app: &TestApp, upload_url: &str, bytes: Vec<u8>) -> StatusCode {
    let url = if upload_url.starts_with("http") {
        upload_url.to_string()
    } else {
        app.url(upload_url)
    };
    app.client.put(url).body(bytes).send().await.unwrap().status()
}

async fn declare(app: &TestApp, user: &TestUser, files: Value) -> crate::helpers::Reply {
    app.post("/api/v1/file/upload-url", Some(&user.token), &json!({"files": files}))
        .await
}

async fn complete(app: &TestApp, user: &TestUser, id: &str) -> crate::helpers::Reply {
    app.post(&format!("/api/v1/file/{id}/complete"), Some(&user.token), &json!({}))
        .await
}

async fn a_two_step_upload_is_usable_once_its_bytes_arrived(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let notes = text_bytes(500);
    let photo = sideways_jpeg(64, 32);

    let declared = declare(
        &app,
        &ana,
        json!([
            {"name": "../notes.txt", "size": 500, "contentType": "text/plain"},
            {"name": "photo.jpg", "size": photo.len(), "content_type": "image/jpeg"}
        ]),
    )
    .await;

    let tickets = declared.data(StatusCode::CREATED)["files"].clone();
    assert_eq!(
        (tickets[0]["name"].clone(), tickets[0]["uploadMethod"].clone()),
        (json!("notes.txt"), json!("PUT"))
    );
    assert!(tickets[0]["expiresAt"].is_string());
    let (notes_id, photo_id) = (text(&tickets[0]["_id"]), text(&tickets[1]["_id"]));
    complete(&app, &ana, &notes_id)
        .await
        .assert_error(StatusCode::CONFLICT, "upload_incomplete");
    let (status, _, _) = fetch(&app, &format!("/api/v1/file/{notes_id}"), Some(&ana.token), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a pending file is nobody's to read yet");
    complete(&app, &bo, &notes_id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let put = put_bytes(&app, &text(&tickets[0]["uploadUrl"]), notes.clone()).await;
    assert!(put.is_success(), "PUT answered {put}");
    let completed = complete(&app, &ana, &notes_id).await;
    let file = completed.data(StatusCode::OK)["file"].clone();
    assert_eq!(
        (file["contentType"].clone(), file["size"].clone()),
        (json!("text/plain"), json!(500))
    );
    let (status, _, bytes) = fetch(&app, &text(&file["url"]), None, &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, notes.clone()));
    complete(&app, &ana, &notes_id).await.data(StatusCode::OK);
    // The upload URL replayed after completion: refused here, or (S3, which cannot refuse a
    // presigned PUT) written where nothing reads it. The checked file stays as it was.
    let replay = put_bytes(&app, &text(&tickets[0]["uploadUrl"]), b"MZ replaced".to_vec()).await;
    if files == FileBackend::Local {
        assert_eq!(replay, StatusCode::CONFLICT);
    }
    complete(&app, &ana, &notes_id).await.data(StatusCode::OK);
    let (status, _, bytes) = fetch(&app, &format!("/api/v1/file/{notes_id}"), Some(&ana.token), &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, notes), "the bytes never change");

    // Not completed by hand: the send that attaches it completes it.
    let put = put_bytes(&app, &text(&tickets[1]["uploadUrl"]), photo.clone()).await;
    assert!(put.is_success(), "PUT answered {put}");
    let chat = app.direct_conversation(&ana, &bo).await;
    let sent = send_files(&app, &ana, &chat, "", &[&notes_id, &photo_id]).await;
    let attachments = sent.data(StatusCode::CREATED)["message"]["attachments"].clone();
    assert_eq!(attachments[1]["contentType"], "image/jpeg");
    assert_eq!(
        (attachments[1]["width"].clone(), attachments[1]["height"].clone()),
        (json!(32), json!(64))
    );
    let (status, _, bytes) = fetch(&app, &text(&attachments[1]["url"]), None, &[]).await;
    assert_eq!((status, bytes), (StatusCode::OK, photo));
}

async fn two_step_refusals(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(
        backend,
        files,
        &[("FILE_MAX_BYTES", "1000"), ("FILE_QUOTA_BYTES", "1500")],
    )
    .await;
    let ana = app.register_user("Ana").await;
    let file = |size: u64, kind: &str| json!({"name": "a", "size": size, "contentType": kind});

    declare(&app, &ana, json!([file(1001, "text/plain")]))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "file_too_large");
    declare(&app, &ana, json!([file(10, "application/x-msdownload")]))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_not_allowed");
    declare(&app, &ana, json!([file(0, "text/plain")]))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    declare(&app, &ana, json!([]))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    declare(&app, &ana, Value::Array(vec![file(1, "text/plain"); 11]))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    declare(&app, &ana, json!([file(800, "text/plain"), file(800, "text/plain")]))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded");

    // Declared sizes count toward the quota at once.
    let tickets = declare(&app, &ana, json!([file(1000, "text/plain"), file(500, "image/png")])).await;
    let tickets = tickets.data(StatusCode::CREATED)["files"].clone();
    declare(&app, &ana, json!([file(1, "text/plain")]))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded");

    // Bytes of another size than declared are refused, and may be sent again.
    let (text_id, text_url) = (text(&tickets[0]["_id"]), text(&tickets[0]["uploadUrl"]));
    assert!(put_bytes(&app, &text_url, text_bytes(999)).await.is_success());
    complete(&app, &ana, &text_id)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(put_bytes(&app, &text_url, text_bytes(1000)).await.is_success());
    complete(&app, &ana, &text_id).await.data(StatusCode::OK);

    // Bytes that are not what may be stored remove the file.
    let (exe_id, exe_url) = (text(&tickets[1]["_id"]), text(&tickets[1]["uploadUrl"]));
    let mut exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    exe.resize(500, 0);
    let put = put_bytes(&app, &exe_url, exe).await;
    match files {
        // This server reads the bytes as they come, and refuses them there.
        FileBackend::Local => {
            assert_eq!(put, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            complete(&app, &ana, &exe_id)
                .await
                .assert_error(StatusCode::CONFLICT, "upload_incomplete");
        }
        FileBackend::S3 => {
            assert!(put.is_success(), "PUT answered {put}");
            complete(&app, &ana, &exe_id)
                .await
                .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "file_type_not_allowed");
            complete(&app, &ana, &exe_id)
                .await
                .assert_error(StatusCode::NOT_FOUND, "not_found");
        }
    }
}

async fn upload_links_are_bound_to_their_file(backend: Backend) {
    let app = spawn_app_with_files(backend, FileBackend::Local, &[]).await;
    let ana = app.register_user("Ana").await;
    let declared = declare(
        &app,
        &ana,
        json!([{"name": "a.txt", "size": 5, "contentType": "text/plain"}, {"name": "b.txt", "size": 5, "contentType": "text/plain"}]),
    )
    .await;
    let tickets = declared.data(StatusCode::CREATED)["files"].clone();
    let (a, b) = (text(&tickets[0]["_id"]), text(&tickets[1]["_id"]));
    let a_url = text(&tickets[0]["uploadUrl"]);

    let borrowed = a_url.replace(&a, &b);
    assert_eq!(
        put_bytes(&app, &borrowed, b"hello".to_vec()).await,
        StatusCode::FORBIDDEN
    );
    let tampered = a_url.replace("expires=", "expires=9");
    assert_eq!(
        put_bytes(&app, &tampered, b"hello".to_vec()).await,
        StatusCode::FORBIDDEN
    );
    let bare = format!("/api/v1/file/{a}/content");
    assert_eq!(put_bytes(&app, &bare, b"hello".to_vec()).await, StatusCode::FORBIDDEN);
    assert_eq!(
        put_bytes(&app, &a_url, b"hello, world".to_vec()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "more than declared"
    );
    assert_eq!(put_bytes(&app, &a_url, b"hello".to_vec()).await, StatusCode::NO_CONTENT);
    complete(&app, &ana, &a).await.data(StatusCode::OK);
    assert_eq!(
        put_bytes(&app, &a_url, b"HELLO".to_vec()).await,
        StatusCode::CONFLICT,
        "a complete file's bytes never change"
    );
    // A download link of a file is no upload link.
    let file = complete(&app, &ana, &a).await.data(StatusCode::OK)["file"].clone();
    let download = text(&file["url"]).replace(&format!("/file/{a}?"), &format!("/file/{a}/content?"));
    assert_eq!(
        put_bytes(&app, &download, b"HELLO".to_vec()).await,
        StatusCode::FORBIDDEN
    );
}

async fn racing_uploads_cannot_pass_the_quota_together(backend: Backend) {
    let app = spawn_app_with_files(backend, FileBackend::Local, &[("FILE_QUOTA_BYTES", "1000")]).await;
    let ana = app.register_user("Ana").await;
    let file = json!([{"name": "a.txt", "size": 600, "contentType": "text/plain"}]);

    let racing = futures_util::future::join_all((0..6).map(|_| declare(&app, &ana, file.clone()))).await;

    let statuses: Vec<StatusCode> = racing.iter().map(|reply| reply.status).collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == StatusCode::CREATED).count(),
        1,
        "one fits in the quota: {statuses:?}"
    );
    for refused in racing.iter().filter(|reply| reply.status != StatusCode::CREATED) {
        refused.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded");
    }
}

async fn messages_keep_image_and_link_urls_without_fetching_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let chat = app.direct_conversation(&ana, &bo).await;
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    // Nothing listens there: a server that fetched it would fail or stall.
    let image = "https://127.0.0.1:9/cat.jpg";

    let sent = app
        .post(
            "/api/v1/message",
            Some(&ana.token),
            &json!({"convo_id": chat, "message": "", "imageUrl": image, "link_preview_url": "http://example.com/page"}),
        )
        .await;

    let message = sent.data(StatusCode::CREATED)["message"].clone();
    assert_eq!(message["imageUrl"], image);
    assert_eq!(message["linkPreviewUrl"], "http://example.com/page");
    assert_eq!(message["files"], json!([]), "files lists uploads only");
    assert_eq!(
        message["attachments"],
        json!([{"kind": "image_url", "url": image}, {"kind": "link", "url": "http://example.com/page"}])
    );
    let live = bo_stream.next_of("message.created").await.data;
    assert_eq!(live["attachments"], message["attachments"]);
    let reply = app
        .post(
            "/api/v1/message",
            Some(&bo.token),
            &json!({"convo_id": chat, "message": "cute", "reply": message["_id"]}),
        )
        .await;
    let quote = reply.data(StatusCode::CREATED)["message"]["replyTo"].clone();
    assert_eq!(
        (quote["hasAttachments"].clone(), quote["attachmentType"].clone()),
        (json!(true), json!("image_url")),
        "a quote can say Photo: {quote}"
    );
    let listed = app.list_messages(&bo.token, &chat, "").await;
    assert_eq!(listed.data(StatusCode::OK)["messages"][1]["imageUrl"], image);

    for bad in [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://",
        "not a url",
    ] {
        let refused = app
            .post(
                "/api/v1/message",
                Some(&ana.token),
                &json!({"convo_id": chat, "message": "x", "imageUrl": bad}),
            )
            .await;
        refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            refused.body["error"]["fields"].to_string().contains("imageUrl"),
            "{}",
            refused.body
        );
    }

    app.delete_message(&ana, &text(&message["_id"]), "all")
        .await
        .data(StatusCode::OK);
    let listed = app.list_messages(&bo.token, &chat, "").await;
    let tombstone = listed.data(StatusCode::OK)["messages"][1].clone();
    assert_eq!(
        (tombstone["imageUrl"].clone(), tombstone["attachments"].clone()),
        (Value::Null, json!([])),
        "a tombstone points at nothing"
    );
    let quote = listed.data(StatusCode::OK)["messages"][0]["replyTo"].clone();
    assert_eq!(quote["hasAttachments"], false, "nor does a quote of one: {quote}");
}

async fn a_profile_photo_shows_as_signed_links_to_everyone_who_sees_the_user(backend: Backend, files: FileBackend) {
    let app = spawn_app_with_files(backend, files, &[]).await;
    let ana = app.register_user("Ana").await;
    let bo = app.register_user("Bo").await;
    let stranger = app.register_user("Stranger").await;
    app.direct_conversation(&ana, &bo).await;
    let upload_one = |user: &TestUser, part: Part<'static>| {
        let app = &app;
        let user = user.clone();
        async move { text(&upload(app, &user, &[part]).await.data(StatusCode::CREATED)["files"][0]["_id"]) }
    };
    let photo = upload_one(&ana, Part::file("me.png", "image/png", png_with_alpha(400, 400))).await;
    let notes = upload_one(&ana, Part::file("notes.txt", "text/plain", text_bytes(100))).await;
    let bos_photo = upload_one(&bo, Part::file("bo.png", "image/png", png_with_alpha(40, 40))).await;
    let set = |avatar: Value| {
        let app = &app;
        let token = ana.token.clone();
        async move {
            app.patch("/api/v1/user/me", Some(&token), &json!({ "avatar": avatar }))
                .await
        }
    };

    // Only an image of her own.
    for refused in [
        json!(notes),
        json!(bos_photo),
        json!(uuid::Uuid::now_v7()),
        json!("not an id"),
    ] {
        let reply = set(refused.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused}: {}",
            reply.body
        );
    }
    let mut bo_stream = app.open_stream(Auth::Bearer(&bo.token), None).await;
    let me = set(json!(photo)).await.data(StatusCode::OK)["user"].clone();
    for key in ["avatarUrl", "avatarThumbnailUrl"] {
        assert!(
            text(&me[key]).contains(&format!("user={}", ana.id)),
            "{key} signed for her: {me}"
        );
    }

    // Her partner is told, with links signed for him, which work without a header.
    let told = bo_stream.next_of("user.updated").await.data["user"].clone();
    let link = text(&told["avatarUrl"]);
    assert!(link.contains(&format!("user={}", bo.id)), "{told}");
    let (status, _, bytes) = fetch(&app, &link, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, png_with_alpha(400, 400));
    let (status, _, thumbnail) = fetch(&app, &text(&told["avatarThumbnailUrl"]), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&thumbnail).unwrap().width(), 320);
    // Anyone who sees her profile may see the photo.
    let seen = app.get_user(&stranger.token, &ana.id).await;
    let seen = seen.data(StatusCode::OK)["user"].clone();
    let (status, _, _) = fetch(&app, &text(&seen["avatarUrl"]), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let listed = app.list_conversations(&bo.token, "").await;
    assert!(
        listed.data(StatusCode::OK).to_string().contains(&format!("{photo}?")),
        "participants carry it signed: {}",
        listed.body
    );

    // Removed: gone from her profile, and no longer readable by others.
    let me = set(Value::Null).await.data(StatusCode::OK)["user"].clone();
    assert_eq!(
        (me["avatarUrl"].clone(), me["avatarThumbnailUrl"].clone()),
        (Value::Null, Value::Null)
    );
    let (status, _, _) = fetch(&app, &link, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

every_store!(
    a_profile_photo_shows_as_signed_links_to_everyone_who_sees_the_user,
    a_photo_gets_its_size_and_an_upright_thumbnail_without_exif,
    a_decompression_bomb_is_refused,
    a_two_step_upload_is_usable_once_its_bytes_arrived,
    two_step_refusals,
);

both_backends!(
    upload_links_are_bound_to_their_file,
    racing_uploads_cannot_pass_the_quota_together,
    messages_keep_image_and_link_urls_without_fetching_them
);
