//! `/api/v1/file`: uploads, downloads and fresh signed links.
//!
//! An upload is a `multipart/form-data` body with one or more `file` parts, each streamed to
//! the file store as it arrives (`crate::files`). A download is allowed to the uploader and to
//! the participants of a conversation where a message carries the file; everyone else gets
//! 404. Links in answers are signed (`?expires=&user=&signature=`) so that `<img src>` works
//! without a header; following one checks the same rule again.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, put, web};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::extract::{FieldAliases, Json, Path, Query};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::files::links::SignedQuery;
use crate::files::{Arrived, FileError, StoredSoFar, Variant, sniff};
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{self, FileState, StoredFile};
use crate::views::FileView;

/// At most this many `file` parts in one upload, and this many parts of any name.
const MAX_FILES_PER_UPLOAD: usize = 10;
const MAX_PARTS_PER_UPLOAD: usize = 20;
/// Fields other than `file` are skipped; each may hold at most this much.
const MAX_OTHER_PART_BYTES: usize = 64 * 1024;
/// An upload that sends nothing for this long is stopped.
const UPLOAD_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The form of `POST /file` (documentation only: the body is read as a stream).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// One or more files (up to 10), each at most `FILE_MAX_BYTES`.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub file: Vec<Vec<u8>>,
}

#[derive(Serialize, ToSchema)]
pub struct FilesData {
    pub files: Vec<FileView>,
}

/// Upload files.
///
/// `multipart/form-data` with one or more `file` parts (other parts are ignored). Each is
/// streamed to the file store as it arrives; past `FILE_MAX_BYTES` the upload stops at once
/// with 413 and nothing is kept. The type comes from the bytes themselves (the part's
/// `Content-Type` is not believed) and must be one `FILE_ALLOWED_TYPES` lists. All or nothing:
/// if one part is refused, none is kept. The answer's `url`s are signed links for the caller.
#[utoipa::path(
    post, path = "/api/v1/file", tag = "files",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The stored files", body = Success<FilesData>),
        (status = 400, description = "A malformed multipart body (`invalid_body`)", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 413, description = "A file past `FILE_MAX_BYTES` (`file_too_large`), or past the caller's `FILE_QUOTA_BYTES` (`quota_exceeded`)", body = ErrorEnvelope),
        (status = 408, description = "Nothing arrived for 60 s", body = ErrorEnvelope),
        (status = 415, description = "Not `multipart/form-data` (`unsupported_media_type`), or a file of a type not allowed (`file_type_not_allowed`)", body = ErrorEnvelope),
        (status = 422, description = "No `file` part, more than 10, or an empty file (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's budget (`rate_limited`, with `Retry-After` and `RateLimit`), or `FILE_MAX_CONCURRENT_UPLOADS` of theirs running", body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn upload_files(
    state: web::Data<AppState>,
    caller: AuthUser,
    parts: Multipart,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Upload, caller.user_id)?;
    let _slot = state.upload_slot(caller.user_id)?;
    let mut form = Form::new(&state.files);
    let read = read_form(&state, caller.user_id, parts, "file", &mut form).await;
    let recorded = match read {
        Ok(()) if form.files.is_empty() => Err(ApiError::invalid_field("file", "send at least one `file` part")),
        Ok(()) => record(&state, &form.files, FileState::Ready).await,
        Err(error) => Err(error),
    };
    if let Err(error) = recorded {
        form.kept.discard().await;
        return Err(error);
    }
    form.kept.keep();
    let sign = state.file_signer(caller.user_id);
    Ok(created(FilesData {
        files: form.files.into_iter().map(|file| FileView::new(file, &sign)).collect(),
    }))
}

/// A multipart form as read: the files of its file parts, stored (bytes in the store, not yet
/// recorded), and its other fields as text.
pub(super) struct Form {
    pub files: Vec<StoredFile>,
    pub fields: Vec<(String, String)>,
    /// The stored bytes: removed when dropped, unless kept.
    pub kept: StoredSoFar,
}

impl Form {
    pub fn new(files: &crate::files::FileStore) -> Self {
        Self {
            files: Vec::new(),
            fields: Vec::new(),
            kept: StoredSoFar::new(files),
        }
    }
}

/// Reads `parts` into `form`: each part named `file_field` streamed to the store, the others
/// kept as text (at most 64 KiB each). On an error, what `form` holds is to be discarded.
pub(super) async fn read_form(
    state: &AppState,
    owner: Uuid,
    mut parts: Multipart,
    file_field: &str,
    form: &mut Form,
) -> Result<(), ApiError> {
    // What the caller may still store, under `FILE_QUOTA_BYTES`.
    let mut quota_left = match state.file_quota {
        None => None,
        Some(quota) => {
            let used = u64::try_from(state.store.bytes_stored_by(owner).await?).unwrap_or_default();
            Some(quota.saturating_sub(used))
        }
    };
    let mut seen = 0;
    while let Some(mut part) = next_within(parts.try_next()).await? {
        seen += 1;
        if seen > MAX_PARTS_PER_UPLOAD {
            return Err(ApiError::invalid_field(
                file_field,
                format!("at most {MAX_PARTS_PER_UPLOAD} parts"),
            ));
        }
        let name = part.name().unwrap_or_default().to_string();
        if name != file_field {
            let mut value = Vec::new();
            while let Some(chunk) = next_within(part.try_next()).await? {
                if value.len() + chunk.len() > MAX_OTHER_PART_BYTES {
                    return Err(ApiError::invalid_field(
                        &name,
                        format!("a field other than `{file_field}` may hold at most {MAX_OTHER_PART_BYTES} bytes"),
                    ));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value).map_err(|_| ApiError::invalid_field(&name, "is not UTF-8 text"))?;
            form.fields.push((name, value));
            continue;
        }
        if form.files.len() == MAX_FILES_PER_UPLOAD {
            return Err(ApiError::invalid_field(
                file_field,
                format!("at most {MAX_FILES_PER_UPLOAD} files"),
            ));
        }
        let display = sniff::display_name(
            part.content_disposition()
                .and_then(|disposition| disposition.get_filename()),
        );
        let id = Uuid::now_v7();
        let mut upload = state.files.begin_upload(id).await.map_err(file_error)?;
        let written = async {
            while let Some(chunk) = next_within(part.try_next()).await? {
                if let Some(left) = quota_left.as_mut() {
                    *left = left.checked_sub(chunk.len() as u64).ok_or_else(quota_exceeded)?;
                }
                upload.write(&chunk).await.map_err(file_error)?;
            }
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(error) = written {
            upload.abort().await;
            return Err(error);
        }
        let bytes = upload.finish().await.map_err(file_error)?;
        form.kept.push(id);
        let image = state
            .files
            .describe_image(id, &bytes.content_type, bytes.size)
            .await
            .map_err(file_error)?;
        form.files.push(StoredFile {
            id,
            owner_id: owner,
            name: display,
            size: i64::try_from(bytes.size).unwrap_or(i64::MAX),
            content_type: bytes.content_type,
            width: image.as_ref().map(|image| pixels(image.width)),
            height: image.as_ref().map(|image| pixels(image.height)),
            thumbnail_type: image.map(|image| image.thumbnail.content_type.to_string()),
            created_at: store::now(),
        });
    }
    Ok(())
}

fn pixels(side: u32) -> i32 {
    i32::try_from(side).unwrap_or(i32::MAX)
}

/// The next item of a multipart stream, unless the client sends nothing for
/// [`UPLOAD_IDLE_TIMEOUT`] (408): a stalled upload holds a store upload and a buffer open.
async fn next_within<T>(
    next: impl std::future::Future<Output = Result<Option<T>, actix_multipart::MultipartError>>,
) -> Result<Option<T>, ApiError> {
    next_chunk_within(next, multipart_error).await
}

/// [`next_within`] for any stream of a body, its errors mapped by `on_error`.
async fn next_chunk_within<T, E>(
    next: impl std::future::Future<Output = Result<Option<T>, E>>,
    on_error: impl FnOnce(E) -> ApiError,
) -> Result<Option<T>, ApiError> {
    match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, next).await {
        Ok(item) => item.map_err(on_error),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BadRequest,
            format!(
                "no bytes for {} s: the upload was stopped",
                UPLOAD_IDLE_TIMEOUT.as_secs()
            ),
        )),
    }
}

fn multipart_error(error: actix_multipart::MultipartError) -> ApiError {
    use actix_multipart::MultipartError as Error;
    match error {
        Error::ContentTypeMissing | Error::ContentTypeParse | Error::ContentTypeIncompatible => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the files as multipart/form-data",
        ),
        other => ApiError::bad_request(ErrorCode::InvalidBody, format!("malformed multipart body: {other}")),
    }
}

fn file_error(error: FileError) -> ApiError {
    match error {
        FileError::TooLarge(max) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::FileTooLarge,
            format!("a file may be at most {max} bytes"),
        ),
        FileError::TypeNotAllowed(kind) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::FileTypeNotAllowed,
            format!("files of type {kind} are not accepted"),
        ),
        FileError::Empty => ApiError::invalid_field("file", "is empty"),
        FileError::ImageTooLarge(refused) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ImageTooLarge,
            refused.to_string(),
        ),
        other => ApiError::internal(other),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedLinkQuery {
    /// Of a signed link (the `url` of an answer): when it stops working, Unix seconds.
    pub expires: Option<i64>,
    /// Of a signed link: the user it was made for.
    pub user: Option<Uuid>,
    /// Of a signed link: its HMAC.
    pub signature: Option<String>,
}

/// Download a file.
///
/// For its uploader, and for the participants of a conversation where a message (not deleted
/// for everyone) carries it; anyone else gets 404. Either with `Authorization: Bearer`, or
/// through a signed link from an answer's `url` (no header needed: for `<img src>`), which
/// expires after `FILE_URL_TTL`; an expired or altered link answers 403. Supports `Range` (206)
/// and `If-None-Match` (304). Images, video and audio are served `inline`, everything else as
/// an `attachment`, always with `X-Content-Type-Options: nosniff` and a sandboxing
/// `Content-Security-Policy`.
#[utoipa::path(
    get, path = "/api/v1/file/{id}", tag = "files",
    security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The file's id"), SignedLinkQuery),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range of the bytes"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No signed link and no valid access token", body = ErrorEnvelope),
        (status = 403, description = "A signed link that expired or was altered", body = ErrorEnvelope),
        (status = 404, description = "No such file, or not one the caller may read", body = ErrorEnvelope),
        (status = 416, description = "A `Range` outside the file (`range_not_satisfiable`)", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}")]
pub async fn download_file(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: Path<Uuid>,
    query: Query<SignedLinkQuery>,
) -> Result<HttpResponse, ApiError> {
    let file = readable(&state, &request, id.into_inner(), &query).await?;
    serve(&state, &request, &file, Variant::Original).await
}

/// Download a photo's thumbnail.
///
/// The same access as `GET /file/{id}` (Bearer, or a signed link: the `thumbnailUrl` of an
/// answer). At most 320 px on its longest side, upright, re-encoded as JPEG (PNG when it has
/// transparency) without EXIF or any other metadata. 404 for files without one (not a photo,
/// or one that could not be decoded: `thumbnailUrl` is then `null`).
#[utoipa::path(
    get, path = "/api/v1/file/{id}/thumbnail", tag = "files",
    security((), ("bearer" = [])),
    params(("id" = Uuid, Path, description = "The file's id"), SignedLinkQuery),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/jpeg"),
        (status = 206, description = "The requested range of it"),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No signed link and no valid access token", body = ErrorEnvelope),
        (status = 403, description = "A signed link that expired or was altered", body = ErrorEnvelope),
        (status = 404, description = "No such file, not one the caller may read, or one without a thumbnail", body = ErrorEnvelope),
        (status = 416, description = "A `Range` outside the thumbnail (`range_not_satisfiable`)", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
    )
)]
#[get("/{id}/thumbnail")]
pub async fn download_thumbnail(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: Path<Uuid>,
    query: Query<SignedLinkQuery>,
) -> Result<HttpResponse, ApiError> {
    let file = readable(&state, &request, id.into_inner(), &query).await?;
    serve(&state, &request, &file, Variant::Thumbnail).await
}

/// File `id`, if the reader may read it: the user a valid signed link names, else the Bearer
/// token's. An expired or altered link is 403; a file they may not read, 404.
async fn readable(
    state: &AppState,
    request: &HttpRequest,
    id: Uuid,
    query: &SignedLinkQuery,
) -> Result<StoredFile, ApiError> {
    let reader = match (&query.expires, &query.user, &query.signature) {
        (Some(expires), Some(user), Some(signature)) => {
            let signed = SignedQuery {
                expires: *expires,
                user: *user,
                signature,
            };
            if !state.file_links.verify(id, signed, store::now()) {
                return Err(ApiError::forbidden(
                    "this file link has expired or is not valid; ask for a fresh one",
                ));
            }
            *user
        }
        _ => AuthUser::extract(request).await?.user_id,
    };
    state
        .store
        .readable_file(reader, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))
}

/// The bytes of `file` (or of its thumbnail), honouring `If-None-Match` and `Range`.
async fn serve(
    state: &AppState,
    request: &HttpRequest,
    file: &StoredFile,
    variant: Variant,
) -> Result<HttpResponse, ApiError> {
    let missing = |error: FileError| match error {
        FileError::Storage(object_store::Error::NotFound { .. }) => ApiError::not_found("file"),
        other => ApiError::internal(other),
    };
    // A file's bytes never change: its id (and the variant) is a strong validator.
    let (etag, size, content_type) = match variant {
        Variant::Original => (
            format!("\"{}\"", file.id.simple()),
            u64::try_from(file.size).unwrap_or_default(),
            file.content_type.as_str(),
        ),
        Variant::Thumbnail => {
            let content_type = file
                .thumbnail_type
                .as_deref()
                .ok_or_else(|| ApiError::not_found("thumbnail"))?;
            let size = state.files.size_of(file.id, variant).await.map_err(missing)?;
            (format!("\"{}-thumbnail\"", file.id.simple()), size, content_type)
        }
        // Unchecked bytes are never served.
        Variant::Staging => return Err(ApiError::not_found("file")),
    };
    let mut response = HttpResponse::build(StatusCode::OK);
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        // Weak comparison, as If-None-Match asks: `W/"x"` matches `"x"`.
        .is_some_and(|value| {
            value
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    if unchanged {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    let range = match request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
    {
        None => None,
        Some(raw) => match byte_range(raw, size) {
            Ranged::Whole => None,
            Ranged::Part(range) => Some(range),
            Ranged::Unsatisfiable => {
                let refusal = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::RangeNotSatisfiable,
                    format!("the file has {size} bytes"),
                );
                let mut response = actix_web::ResponseError::error_response(&refusal);
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header::HeaderValue::from_str(&format!("bytes */{size}")).expect("an ASCII header"),
                );
                return Ok(response);
            }
        },
    };
    let body = state
        .files
        .read_variant(file.id, variant, range.clone())
        .await
        .map_err(missing)?;
    if let Some(range) = &range {
        response.status(StatusCode::PARTIAL_CONTENT).insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", range.start, range.end - 1),
        ));
    }
    let length = range.as_ref().map_or(size, |range| range.end - range.start);
    let disposition = if sniff::shown_inline(content_type) {
        DispositionType::Inline
    } else {
        DispositionType::Attachment
    };
    let ascii_name: String = file
        .name
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let content_type = match content_type {
        "text/plain" => "text/plain; charset=utf-8",
        other => other,
    };
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header(ContentDisposition {
            disposition,
            parameters: vec![
                DispositionParam::Filename(ascii_name),
                DispositionParam::FilenameExt(header::ExtendedValue {
                    charset: header::Charset::Ext("UTF-8".into()),
                    language_tag: None,
                    value: file.name.clone().into_bytes(),
                }),
            ],
        })
        .no_chunking(length);
    let stream =
        crate::files::byte_stream(body).map_err(|error| actix_web::error::ErrorInternalServerError(error.to_string()));
    Ok(response.streaming(stream))
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// Nothing we serve by part (another unit, or a malformed header: RFC 9110 says ignore it).
    Whole,
    Part(std::ops::Range<u64>),
    /// A byte range outside the file.
    Unsatisfiable,
}

/// The first `bytes=` range of a `size`-byte file (several ranges are served as the first).
fn byte_range(raw: &str, size: u64) -> Ranged {
    let raw = raw.trim();
    let Some(spec) = raw
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &raw[6..])
    else {
        return Ranged::Whole;
    };
    let Some((start, end)) = spec.split(',').next().and_then(|first| first.trim().split_once('-')) else {
        return Ranged::Whole;
    };
    let parsed = match (start.trim(), end.trim()) {
        ("", "") => None,
        ("", suffix) => suffix
            .parse::<u64>()
            .ok()
            .map(|suffix| (size.saturating_sub(suffix), size, suffix > 0)),
        (start, "") => start.parse::<u64>().ok().map(|start| (start, size, true)),
        (start, end) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(start), Ok(end)) if end >= start => Some((start, end.saturating_add(1).min(size), true)),
            _ => None,
        },
    };
    match parsed {
        None => Ranged::Whole,
        Some((start, end, nonempty)) if nonempty && start < end && start < size => Ranged::Part(start..end),
        Some(_) => Ranged::Unsatisfiable,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct UploadUrlsRequest {
    /// The files to be sent, 1 to 10.
    pub files: Vec<DeclaredFile>,
}

impl FieldAliases for UploadUrlsRequest {}

/// A file a client is about to send, as it declares it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredFile {
    /// For display (sanitised as an upload's name is).
    #[schema(example = "holiday.mp4")]
    pub name: String,
    /// In bytes, 1 to `FILE_MAX_BYTES`: the bytes sent must be exactly this many.
    pub size: u64,
    /// What the client believes it is; must be one `FILE_ALLOWED_TYPES` lists. The type is
    /// decided again from the bytes once they arrived. Alias: `content_type`.
    #[serde(alias = "content_type")]
    #[schema(example = "video/mp4")]
    pub content_type: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicketView {
    #[serde(rename = "_id")]
    pub id: Uuid,
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// Where to send the bytes, with `PUT` and exactly `size` of them. With S3 a presigned URL
    /// of the bucket; with a local store a signed path on this server. No other header needed.
    pub upload_url: String,
    #[schema(example = "PUT")]
    pub upload_method: &'static str,
    /// When `uploadUrl` stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct UploadUrlsData {
    pub files: Vec<UploadTicketView>,
}

/// Start a two-step upload (SAMA's upload URLs).
///
/// For large files and clients that send straight to S3: declare the files, `PUT` each one's
/// bytes to its `uploadUrl` (no header besides `Content-Length`; the URL is the credential),
/// then `POST /file/{id}/complete` (sending a message with the file completes it too). Until
/// then the file is pending: usable by no one, and swept after `FILE_ORPHAN_TTL` if its bytes
/// never come. Declared sizes count toward `FILE_QUOTA_BYTES` at once.
#[utoipa::path(
    post, path = "/api/v1/file/upload-url", tag = "files",
    security(("bearer" = [])),
    request_body = UploadUrlsRequest,
    responses(
        (status = 201, description = "A pending file and its upload URL per declared file", body = Success<UploadUrlsData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 413, description = "A size past `FILE_MAX_BYTES` (`file_too_large`), or past the caller's `FILE_QUOTA_BYTES` (`quota_exceeded`)", body = ErrorEnvelope),
        (status = 415, description = "A declared type `FILE_ALLOWED_TYPES` does not list (`file_type_not_allowed`)", body = ErrorEnvelope),
        (status = 422, description = "No files, more than 10, or a size of 0 (`validation_failed`)", body = ErrorEnvelope),
        (status = 429, description = "Past the caller's upload budget (`rate_limited`)", body = ErrorEnvelope),
    )
)]
#[post("/upload-url")]
pub async fn create_upload_urls(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<UploadUrlsRequest>,
) -> Result<HttpResponse, ApiError> {
    state.check_rate_limit(Action::Upload, caller.user_id)?;
    let declared = &body.files;
    if declared.is_empty() || declared.len() > MAX_FILES_PER_UPLOAD {
        return Err(ApiError::invalid_field(
            "files",
            format!("declare 1 to {MAX_FILES_PER_UPLOAD} files"),
        ));
    }
    let rules = state.files.rules();
    for file in declared {
        if file.size == 0 {
            return Err(ApiError::invalid_field("size", "must be at least 1"));
        }
        if file.size > rules.max_bytes {
            return Err(file_error(FileError::TooLarge(rules.max_bytes)));
        }
        if !rules.allowed_types.contains(&file.content_type) {
            return Err(file_error(FileError::TypeNotAllowed(file.content_type.clone())));
        }
    }
    let now = store::now();
    let files: Vec<StoredFile> = declared
        .iter()
        .map(|file| StoredFile {
            id: Uuid::now_v7(),
            owner_id: caller.user_id,
            name: sniff::display_name(Some(&file.name)),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            content_type: file.content_type.clone(),
            width: None,
            height: None,
            thumbnail_type: None,
            created_at: now,
        })
        .collect();
    record(&state, &files, FileState::Pending).await?;
    let ttl = state.upload_url_ttl;
    let expires = crate::files::links::FileLinks::expiry(now, ttl);
    let expires_at = chrono::DateTime::from_timestamp(expires, 0).unwrap_or(now);
    let mut tickets = Vec::with_capacity(files.len());
    for file in files {
        let size = u64::try_from(file.size).unwrap_or_default();
        let upload_url = match state.files.presigned_put(file.id, ttl).await {
            Ok(Some(url)) => url,
            Ok(None) => state.file_links.upload_path(file.id, caller.user_id, expires),
            Err(error) => return Err(ApiError::internal(error)),
        };
        tickets.push(UploadTicketView {
            id: file.id,
            name: file.name,
            size,
            content_type: file.content_type,
            upload_url,
            upload_method: "PUT",
            expires_at,
        });
    }
    Ok(created(UploadUrlsData { files: tickets }))
}

/// Send the bytes of a two-step upload (local store).
///
/// The `uploadUrl` of `POST /file/upload-url` when files are kept on this server: `PUT` the
/// raw bytes, exactly the declared size. The signed link is the credential (no header). The
/// bytes are checked as an upload's are (size while reading, type from the first bytes);
/// then `POST /file/{id}/complete`. Sending again replaces what was sent.
#[utoipa::path(
    put, path = "/api/v1/file/{id}/content", tag = "files",
    params(("id" = Uuid, Path, description = "The pending file's id"), SignedLinkQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 204, description = "Stored; complete the upload next"),
        (status = 400, description = "The id is not a UUID, or the body broke off", body = ErrorEnvelope),
        (status = 422, description = "The id holds U+0000 (`validation_failed`)", body = ErrorEnvelope),
        (status = 403, description = "A missing, expired or altered upload link", body = ErrorEnvelope),
        (status = 404, description = "No such pending file", body = ErrorEnvelope),
        (status = 409, description = "The upload is complete already (`upload_complete`)", body = ErrorEnvelope),
        (status = 413, description = "More bytes than declared (`file_too_large`)", body = ErrorEnvelope),
        (status = 415, description = "Bytes of a type not allowed (`file_type_not_allowed`)", body = ErrorEnvelope),
        (status = 429, description = "`FILE_MAX_CONCURRENT_UPLOADS` of the user's running", body = ErrorEnvelope),
    )
)]
#[put("/{id}/content")]
pub async fn put_content(
    state: web::Data<AppState>,
    id: Path<Uuid>,
    query: Query<SignedLinkQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let invalid = || ApiError::forbidden("this upload link has expired or is not valid; ask for a new one");
    let (Some(expires), Some(user), Some(signature)) = (query.expires, query.user, query.signature.as_deref()) else {
        return Err(invalid());
    };
    let signed = SignedQuery {
        expires,
        user,
        signature,
    };
    if !state.file_links.verify_upload(id, signed, store::now()) {
        return Err(invalid());
    }
    let (file, file_state) = state
        .store
        .own_file(user, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    if file_state == FileState::Ready {
        return Err(ApiError::conflict(
            ErrorCode::UploadComplete,
            "this upload is complete already",
        ));
    }
    let _slot = state.upload_slot(user)?;
    let declared = u64::try_from(file.size).unwrap_or_default();
    let mut upload = state
        .files
        .begin_upload_of(id, Variant::Staging, declared)
        .await
        .map_err(file_error)?;
    let written = async {
        let broken = |error: actix_web::error::PayloadError| {
            ApiError::bad_request(ErrorCode::InvalidBody, format!("the body broke off: {error}"))
        };
        while let Some(chunk) = next_chunk_within(payload.try_next(), broken).await? {
            upload.write(&chunk).await.map_err(|error| match error {
                FileError::TooLarge(_) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::FileTooLarge,
                    format!("{declared} bytes were declared; send exactly that many"),
                ),
                other => file_error(other),
            })?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(error) = written {
        upload.abort().await;
        return Err(error);
    }
    upload.finish().await.map_err(file_error)?;
    // Completed or swept while the bytes came: they belong to nothing now.
    if !matches!(state.store.own_file(user, id).await?, Some((_, FileState::Pending))) {
        if let Err(error) = state.files.delete_staged(id).await {
            tracing::warn!(%error, file = %id, "could not remove a late upload");
        }
        return Err(ApiError::conflict(
            ErrorCode::UploadComplete,
            "this upload was completed or expired while its bytes arrived",
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize, ToSchema)]
pub struct FileData {
    pub file: FileView,
}

/// Complete a two-step upload.
///
/// Checks the bytes sent to the `uploadUrl`: exactly the declared size, of an allowed type
/// (sniffed now, and shown as `contentType`); a photo gets its size and thumbnail. Then the
/// file is ready to be attached. Completing a ready file answers it again. Bytes of the wrong
/// size are removed (send them again while the URL works); bytes of a refused type remove
/// the file.
#[utoipa::path(
    post, path = "/api/v1/file/{id}/complete", tag = "files",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The pending file's id")),
    responses(
        (status = 200, description = "The ready file", body = Success<FileData>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 404, description = "No such file of the caller's", body = ErrorEnvelope),
        (status = 409, description = "No bytes have arrived yet (`upload_incomplete`)", body = ErrorEnvelope),
        (status = 415, description = "Bytes of a type not allowed (`file_type_not_allowed`); the file is removed", body = ErrorEnvelope),
        (status = 422, description = "Another size than declared (`validation_failed` on `size`), or a picture past `IMAGE_MAX_PIXELS` (`image_too_large`; removed)", body = ErrorEnvelope),
    )
)]
#[post("/{id}/complete")]
pub async fn complete_upload(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (file, file_state) = state
        .store
        .own_file(caller.user_id, id.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let file = match file_state {
        FileState::Ready => file,
        FileState::Pending => {
            state.check_rate_limit(Action::Upload, caller.user_id)?;
            let _slot = state.upload_slot(caller.user_id)?;
            complete_pending(&state, file, "size").await?
        }
    };
    Ok(ok(FileData {
        file: FileView::new(file, state.file_signer(caller.user_id)),
    }))
}

/// Checks the bytes that arrived for pending `file` and makes it ready: as
/// `POST /file/{id}/complete` answers, and on first use (a send that attaches it). A wrong
/// size is reported on `field`. The caller holds an upload slot.
pub(super) async fn complete_pending(
    state: &AppState,
    mut file: StoredFile,
    field: &str,
) -> Result<StoredFile, ApiError> {
    let declared = u64::try_from(file.size).unwrap_or_default();
    let arrived = state.files.check_arrived(file.id, declared).await;
    let (bytes, image) = match arrived {
        Ok(Arrived::Complete(bytes, image)) => (bytes, image),
        Ok(Arrived::Nothing) => {
            // A concurrent completion may have taken the bytes first.
            if let Some((current, FileState::Ready)) = state.store.own_file(file.owner_id, file.id).await? {
                return Ok(current);
            }
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::UploadIncomplete,
                format!(
                    "no bytes have arrived for file {} yet: PUT them to its uploadUrl first",
                    file.id
                ),
            ));
        }
        Ok(Arrived::WrongSize(size)) => {
            return Err(ApiError::invalid_field(
                field,
                format!(
                    "{size} bytes arrived for file {} but {declared} were declared; send them again",
                    file.id
                ),
            ));
        }
        Err(error @ (FileError::TypeNotAllowed(_) | FileError::ImageTooLarge(_))) => {
            state.store.forget_files(file.owner_id, &[file.id]).await?;
            return Err(file_error(error));
        }
        Err(error) => return Err(file_error(error)),
    };
    file.content_type = bytes.content_type;
    file.width = image.as_ref().map(|image| pixels(image.width));
    file.height = image.as_ref().map(|image| pixels(image.height));
    file.thumbnail_type = image.map(|image| image.thumbnail.content_type.to_string());
    if state.store.complete_file(&file).await? {
        return Ok(file);
    }
    // Completed by a concurrent call meanwhile (or swept): answer what is there now.
    match state.store.own_file(file.owner_id, file.id).await? {
        Some((current, FileState::Ready)) => Ok(current),
        _ => Err(ApiError::not_found("file")),
    }
}

/// Records `files` in `state`, within the owner's `FILE_QUOTA_BYTES` (413 past it).
pub(super) async fn record(state: &AppState, files: &[StoredFile], file_state: FileState) -> Result<(), ApiError> {
    if state.store.insert_files(files, file_state, state.file_quota).await? {
        Ok(())
    } else {
        Err(quota_exceeded())
    }
}

fn quota_exceeded() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded,
        "your files would take more than your storage quota",
    )
}

#[derive(Deserialize, ToSchema)]
pub struct FileUrlsRequest {
    /// File ids, at most 100.
    pub ids: Vec<Uuid>,
}

impl FieldAliases for FileUrlsRequest {}

#[derive(Serialize, ToSchema)]
pub struct FileUrlsData {
    /// A fresh signed link per file the caller may read (others are left out).
    #[schema(value_type = Object, example = json!({"0190f3a4-5b6c-7d8e-9f00-112233445566": "/api/v1/file/0190f3a4-5b6c-7d8e-9f00-112233445566?expires=1767225600&user=0190f3a4-0000-7000-8000-000000000001&signature=…"}))]
    pub urls: serde_json::Map<String, serde_json::Value>,
}

/// Fresh signed links for files (SAMA's `get_file_urls`).
///
/// For the files the caller may read; the others are left out, as if they did not exist.
#[utoipa::path(
    post, path = "/api/v1/file/urls", tag = "files",
    security(("bearer" = [])),
    request_body = FileUrlsRequest,
    responses(
        (status = 200, description = "A link per readable file", body = Success<FileUrlsData>),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing, invalid or expired access token", body = ErrorEnvelope),
        (status = 422, description = "More than 100 ids", body = ErrorEnvelope),
    )
)]
#[post("/urls")]
pub async fn file_urls(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: Json<FileUrlsRequest>,
) -> Result<HttpResponse, ApiError> {
    if body.ids.len() > 100 {
        return Err(ApiError::invalid_field("ids", "at most 100"));
    }
    let files = state.store.readable_files(caller.user_id, &body.ids).await?;
    let sign = state.file_signer(caller.user_id);
    let urls = files
        .iter()
        .map(|file| (file.id.to_string(), serde_json::Value::from(sign(file.id, ""))))
        .collect();
    Ok(ok(FileUrlsData { urls }))
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_are_read_as_http_says() {
        use super::Ranged::{Part, Unsatisfiable, Whole};
        assert_eq!(byte_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(byte_range("Bytes=0-9", 100), Part(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Part(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Part(90..100));
        assert_eq!(byte_range("bytes=-500", 100), Part(0..100));
        assert_eq!(byte_range("bytes=50-500", 100), Part(50..100));
        assert_eq!(byte_range("bytes=0-18446744073709551615", 100), Part(0..100));
        assert_eq!(byte_range("bytes=0-9, 20-29", 100), Part(0..10));
        assert_eq!(byte_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(byte_range("bytes=9-3", 100), Whole);
        assert_eq!(byte_range("items=0-9", 100), Whole);
        assert_eq!(byte_range("bytes=a-b", 100), Whole);
    }
}
