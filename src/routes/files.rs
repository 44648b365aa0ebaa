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
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, web};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::envelope::{Success, created, ok};
use super::extract::{FieldAliases, Json, Path, Query};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::files::links::SignedQuery;
use crate::files::{FileError, StoredSoFar, sniff};
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{self, StoredFile};
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
        Ok(()) => state.store.insert_files(&form.files).await.map_err(ApiError::from),
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
                    *left = left.checked_sub(chunk.len() as u64).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            ErrorCode::QuotaExceeded,
                            "your files would take more than your storage quota",
                        )
                    })?;
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
        form.files.push(StoredFile {
            id,
            owner_id: owner,
            name: display,
            size: i64::try_from(bytes.size).unwrap_or(i64::MAX),
            content_type: bytes.content_type,
            width: None,
            height: None,
            created_at: store::now(),
        });
    }
    Ok(())
}

/// The next item of a multipart stream, unless the client sends nothing for
/// [`UPLOAD_IDLE_TIMEOUT`] (408): a stalled upload holds a store upload and a buffer open.
async fn next_within<T>(
    next: impl std::future::Future<Output = Result<Option<T>, actix_multipart::MultipartError>>,
) -> Result<Option<T>, ApiError> {
    match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, next).await {
        Ok(item) => item.map_err(multipart_error),
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
    let id = id.into_inner();
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
        _ => AuthUser::extract(&request).await?.user_id,
    };
    let file = state
        .store
        .readable_file(reader, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    serve(&state, &request, &file).await
}

/// The bytes of `file`, honouring `If-None-Match` and `Range`.
async fn serve(state: &AppState, request: &HttpRequest, file: &StoredFile) -> Result<HttpResponse, ApiError> {
    // A file's bytes never change: its id is a strong validator.
    let etag = format!("\"{}\"", file.id.simple());
    let size = u64::try_from(file.size).unwrap_or_default();
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
        .read(file.id, range.clone())
        .await
        .map_err(|error| match error {
            FileError::Storage(object_store::Error::NotFound { .. }) => ApiError::not_found("file"),
            other => ApiError::internal(other),
        })?;
    if let Some(range) = &range {
        response.status(StatusCode::PARTIAL_CONTENT).insert_header((
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", range.start, range.end - 1),
        ));
    }
    let length = range.as_ref().map_or(size, |range| range.end - range.start);
    let content_type = match file.content_type.as_str() {
        "text/plain" => "text/plain; charset=utf-8",
        other => other,
    };
    let disposition = if sniff::shown_inline(&file.content_type) {
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
    let stream = body
        .into_stream()
        .map_err(|error| actix_web::error::ErrorInternalServerError(error.to_string()));
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
