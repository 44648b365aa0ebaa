//! The bytes of uploaded files, behind one interface (`object_store`): a local folder by
//! default, any S3-compatible store in production (several instances then share the files).
//! Metadata (owner, name, size, type) lives in the database (`store/files.rs`); this module
//! only moves bytes, decides their type from what they are ([`sniff`]), and signs the links
//! that let `<img src>` fetch them without a header ([`links`]).
//!
//! An upload is streamed: each chunk goes on to the store as it arrives (S3: a multipart
//! upload of 5 MiB parts, at most two in flight), so memory does not grow with the file's size,
//! and the size limit stops it the moment it is passed, aborting what was written.

pub mod images;
pub mod links;
pub mod sniff;

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt, WriteMultipart};
use uuid::Uuid;

/// Where the bytes go.
#[derive(Clone)]
pub enum Location {
    /// A folder on this machine (created if missing).
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Location),
}

#[derive(Clone)]
pub struct S3Location {
    pub bucket: String,
    /// Keys are written under this prefix (`s3://bucket/prefix`), without slashes around it.
    pub prefix: String,
    /// `S3_ENDPOINT` for stores other than AWS (MinIO, moto, R2...); plain `http://` allowed.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Never prints the credentials.
impl std::fmt::Debug for Location {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(folder) => write!(formatter, "Local({})", folder.display()),
            Self::S3(s3) => write!(
                formatter,
                "S3(bucket={}, prefix={:?}, endpoint={:?}, region={})",
                s3.bucket, s3.prefix, s3.endpoint, s3.region
            ),
        }
    }
}

/// What may be stored.
#[derive(Clone, Debug)]
pub struct UploadRules {
    pub max_bytes: u64,
    /// Sniffed content types that are accepted.
    pub allowed_types: Vec<String>,
    /// How photos are read for their size and thumbnail.
    pub images: images::ImageLimits,
}

impl UploadRules {
    /// The type of a file beginning with `head`, sniffed, if it is one that may be stored.
    pub fn allowed_type_of(&self, head: &[u8]) -> Result<String, FileError> {
        let sniffed = sniff::content_type(head);
        if self.allowed_types.contains(&sniffed) {
            Ok(sniffed)
        } else {
            Err(FileError::TypeNotAllowed(sniffed))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    #[error("files of type {0} are not accepted")]
    TypeNotAllowed(String),
    #[error("the file is empty")]
    Empty,
    #[error(transparent)]
    ImageTooLarge(images::ImageError),
    #[error("the file store failed: {0}")]
    Storage(#[from] object_store::Error),
    #[error("cannot open the file store: {0}")]
    Open(String),
}

/// The bytes of one stored upload, as the store saw them.
#[derive(Clone, Debug)]
pub struct StoredBytes {
    pub size: u64,
    pub content_type: String,
}

#[derive(Clone)]
pub struct FileStore {
    objects: Arc<dyn ObjectStore>,
    /// S3's: presigned URLs for the two-step upload (`None` for a local folder).
    signer: Option<Arc<dyn object_store::signer::Signer>>,
    prefix: Option<String>,
    rules: Arc<UploadRules>,
    /// Photo decodes running on this instance (see [`images`]).
    decodes: Arc<tokio::sync::Semaphore>,
}

impl FileStore {
    pub fn open(location: &Location, rules: UploadRules) -> Result<Self, FileError> {
        type Opened = (
            Arc<dyn ObjectStore>,
            Option<Arc<dyn object_store::signer::Signer>>,
            Option<String>,
        );
        let (objects, signer, prefix): Opened = match location {
            Location::Local(folder) => {
                std::fs::create_dir_all(folder)
                    .map_err(|error| FileError::Open(format!("{}: {error}", folder.display())))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(folder)
                    .map_err(|error| FileError::Open(error.to_string()))?
                    .with_automatic_cleanup(true);
                (Arc::new(local), None, None)
            }
            Location::S3(s3) => {
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                }
                let store = Arc::new(builder.build().map_err(|error| FileError::Open(error.to_string()))?);
                (
                    store.clone(),
                    Some(store),
                    Some(s3.prefix.clone()).filter(|prefix| !prefix.is_empty()),
                )
            }
        };
        Ok(Self {
            objects,
            signer,
            prefix,
            decodes: Arc::new(tokio::sync::Semaphore::new(rules.images.concurrent.max(1))),
            rules: Arc::new(rules),
        })
    }

    pub fn rules(&self) -> &UploadRules {
        &self.rules
    }

    /// Where the bytes of file `id` (`Variant::Original`) or its thumbnail are.
    fn key(&self, id: Uuid, variant: Variant) -> ObjectPath {
        let folder = match variant {
            Variant::Original => "files",
            Variant::Thumbnail => "thumbnails",
            Variant::Staging => "uploads",
        };
        match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{folder}/{id}")),
            None => ObjectPath::from(format!("{folder}/{id}")),
        }
    }

    /// The size and a thumbnail of file `id`, of `size` bytes and sniffed as `content_type`,
    /// if it is a photo we read: the thumbnail is stored, and the facts returned. `None` for
    /// other files, photos too big to read, pictures that do not decode, and when the decoder
    /// is busy for [`DECODE_WAIT`] or the thumbnail cannot be stored (they stay plain files).
    /// A picture past the pixel or memory limits is refused.
    pub async fn describe_image(
        &self,
        id: Uuid,
        content_type: &str,
        size: u64,
    ) -> Result<Option<images::ImageFacts>, FileError> {
        let Some(format) = images::format_of(content_type) else {
            return Ok(None);
        };
        if size > images::MAX_DECODED_FILE_BYTES {
            return Ok(None);
        }
        // Owned, and moved into the decode: a request dropped mid-decode (the client went
        // away) keeps its slot until the decode really ends.
        let Ok(Ok(decode)) = tokio::time::timeout(DECODE_WAIT, self.decodes.clone().acquire_owned()).await else {
            tracing::warn!(file = %id, "the image decoder stayed busy: a photo without thumbnail");
            return Ok(None);
        };
        let bytes = self.read(id, Some(0..size)).await?.bytes().await?;
        let limits = self.rules.images;
        let decoded = tokio::task::spawn_blocking(move || {
            let facts = images::inspect(&bytes, format, &limits);
            drop(decode);
            facts
        })
        .await;
        let facts = match decoded {
            Ok(Ok(facts)) => facts,
            Ok(Err(refused @ (images::ImageError::TooLarge { .. } | images::ImageError::TooBig(_)))) => {
                return Err(FileError::ImageTooLarge(refused));
            }
            Ok(Err(images::ImageError::Unreadable(reason))) => {
                tracing::debug!(file = %id, %reason, "a photo without thumbnail");
                return Ok(None);
            }
            Err(failed) => {
                tracing::warn!(file = %id, error = %failed, "the image decoder failed: a photo without thumbnail");
                return Ok(None);
            }
        };
        let stored = self
            .objects
            .put(&self.key(id, Variant::Thumbnail), facts.thumbnail.bytes.clone().into())
            .await;
        match stored {
            Ok(_) => Ok(Some(facts)),
            Err(error) => {
                tracing::warn!(file = %id, %error, "could not store a thumbnail: a photo without one");
                Ok(None)
            }
        }
    }

    /// Starts storing the bytes of file `id`, at most `FILE_MAX_BYTES` of them.
    pub async fn begin_upload(&self, id: Uuid) -> Result<Upload, FileError> {
        self.begin_upload_of(id, Variant::Original, self.rules.max_bytes).await
    }

    /// Starts storing the bytes of file `id`'s `variant`, at most `limit` of them.
    pub async fn begin_upload_of(&self, id: Uuid, variant: Variant, limit: u64) -> Result<Upload, FileError> {
        let key = self.key(id, variant);
        let upload = self.objects.put_multipart(&key).await?;
        Ok(Upload {
            writer: Some(WriteMultipart::new(upload)),
            limit: limit.min(self.rules.max_bytes),
            rules: self.rules.clone(),
            size: 0,
            head: Vec::with_capacity(sniff::SNIFF_BYTES),
            content_type: None,
        })
    }

    /// The bytes of file `id`, or the `range` of them.
    pub async fn read(&self, id: Uuid, range: Option<std::ops::Range<u64>>) -> Result<GetResult, FileError> {
        self.read_variant(id, Variant::Original, range).await
    }

    /// The bytes of file `id`'s `variant`, or the `range` of them.
    pub async fn read_variant(
        &self,
        id: Uuid,
        variant: Variant,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<GetResult, FileError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        Ok(self.objects.get_opts(&self.key(id, variant), options).await?)
    }

    /// For a two-step upload of file `id` with S3: a presigned `PUT`, valid for `expires_in`.
    /// S3 cannot bind the length to the signature (object_store reserves `Content-Length`), so
    /// the size is checked once the bytes arrived ([`FileStore::check_arrived`]). `None` with a
    /// local folder: the client then `PUT`s to this server, which checks as it reads.
    pub async fn presigned_put(&self, id: Uuid, expires_in: std::time::Duration) -> Result<Option<String>, FileError> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let url = signer
            .signed_url(
                object_store::signer::Method::PUT,
                &self.key(id, Variant::Staging),
                expires_in,
            )
            .await?;
        Ok(Some(url.to_string()))
    }

    /// The bytes a two-step upload of file `id` sent (to its staging key), checked against
    /// the `declared` size and the upload rules, and moved to where files are read from. The
    /// staging key is what the `uploadUrl` writes: once the bytes are moved, a replayed URL
    /// can only write there again, never change the checked file. Bytes that do not pass are
    /// removed.
    pub async fn check_arrived(&self, id: Uuid, declared: u64) -> Result<Arrived, FileError> {
        let (staged, kept) = (self.key(id, Variant::Staging), self.key(id, Variant::Original));
        match self.objects.copy(&staged, &kept).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(Arrived::Nothing),
            Err(error) => return Err(error.into()),
        }
        if let Err(error) = self.delete_staged(id).await {
            tracing::warn!(file = %id, %error, "could not remove a staged upload");
        }
        // From here on only this server writes the bytes: check what was moved.
        let size = self.size_of(id, Variant::Original).await?;
        if size != declared {
            self.delete(id).await?;
            return Ok(Arrived::WrongSize(size));
        }
        let head_bytes = (sniff::SNIFF_BYTES as u64).min(size);
        let head = self.read(id, Some(0..head_bytes)).await?.bytes().await?;
        let content_type = match self.rules.allowed_type_of(&head) {
            Ok(content_type) => content_type,
            Err(refused) => {
                self.delete(id).await?;
                return Err(refused);
            }
        };
        let image = match self.describe_image(id, &content_type, size).await {
            Ok(image) => image,
            Err(refused @ FileError::ImageTooLarge(_)) => {
                self.delete(id).await?;
                return Err(refused);
            }
            Err(error) => return Err(error),
        };
        Ok(Arrived::Complete(StoredBytes { size, content_type }, image))
    }

    /// Removes what a two-step upload of file `id` sent and no one checked.
    pub async fn delete_staged(&self, id: Uuid) -> Result<(), FileError> {
        self.delete_variant(id, Variant::Staging).await
    }

    async fn delete_variant(&self, id: Uuid, variant: Variant) -> Result<(), FileError> {
        match self.objects.delete(&self.key(id, variant)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// How many bytes file `id`'s `variant` holds.
    pub async fn size_of(&self, id: Uuid, variant: Variant) -> Result<u64, FileError> {
        Ok(self.objects.head(&self.key(id, variant)).await?.size)
    }

    /// Removes the bytes of file `id`, its thumbnail and any staged upload (gone already is
    /// fine).
    pub async fn delete(&self, id: Uuid) -> Result<(), FileError> {
        for variant in [Variant::Original, Variant::Thumbnail, Variant::Staging] {
            self.delete_variant(id, variant).await?;
        }
        Ok(())
    }
}

/// The bytes `result` holds, as a stream. A local file is read [`READ_CHUNK`] at a time on the
/// blocking pool: object_store's own stream reads 8 KiB per step, which held downloads to a
/// few percent of what the disk gives.
pub fn byte_stream(
    result: GetResult,
) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>> {
    use futures_util::{StreamExt, TryStreamExt};
    match result.payload {
        object_store::GetResultPayload::File(file, _) => {
            let range = result.range;
            futures_util::stream::try_unfold((file, range.start, range.end), |(mut file, at, end)| async move {
                if at >= end {
                    return Ok(None);
                }
                let wanted = usize::try_from((end - at).min(READ_CHUNK)).unwrap_or(usize::MAX);
                let (file, chunk) = tokio::task::spawn_blocking(move || {
                    use std::io::{Read, Seek, SeekFrom};
                    file.seek(SeekFrom::Start(at))?;
                    let mut chunk = vec![0; wanted];
                    file.read_exact(&mut chunk)?;
                    Ok::<_, std::io::Error>((file, chunk))
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(Some((bytes::Bytes::from(chunk), (file, at + wanted as u64, end))))
            })
            .boxed()
        }
        object_store::GetResultPayload::Stream(stream) => stream.map_err(std::io::Error::other).boxed(),
    }
}

/// How much of a local file one step of a download reads.
const READ_CHUNK: u64 = 256 * 1024;

/// What [`FileStore::check_arrived`] found.
#[derive(Debug)]
pub enum Arrived {
    /// No bytes yet.
    Nothing,
    /// Bytes of another size than declared (removed; the client may send them again).
    WrongSize(u64),
    /// All of them, of an allowed type; a photo's facts too.
    Complete(StoredBytes, Option<images::ImageFacts>),
}

/// Which bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Original,
    /// Of a photo: [`images::THUMBNAIL_SIDE`] px, re-encoded without metadata.
    Thumbnail,
    /// Of a two-step upload: what its `uploadUrl` received, not yet checked.
    Staging,
}

/// How long a photo waits for the decoder before it is stored without a thumbnail.
const DECODE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One file being stored. Dropped unfinished (the client went away and the request's future
/// with it), it aborts the store's multipart upload in the background.
pub struct Upload {
    writer: Option<WriteMultipart>,
    /// The most bytes it may hold.
    limit: u64,
    rules: Arc<UploadRules>,
    size: u64,
    head: Vec<u8>,
    content_type: Option<String>,
}

impl Upload {
    /// Stores the next chunk. Refuses it (and the file) past the size limit, and as soon as the
    /// first bytes show a type that is not allowed.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), FileError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(FileError::TooLarge(self.limit));
        }
        if self.content_type.is_none() {
            let wanted = sniff::SNIFF_BYTES.saturating_sub(self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
            if self.head.len() >= sniff::SNIFF_BYTES {
                self.decide_type()?;
            }
        }
        let writer = self
            .writer
            .as_mut()
            .expect("an upload writes until finished or aborted");
        // Bounded memory: wait while two parts are in flight.
        writer.wait_for_capacity(2).await?;
        writer.write(chunk);
        Ok(())
    }

    fn decide_type(&mut self) -> Result<(), FileError> {
        self.content_type = Some(self.rules.allowed_type_of(&self.head)?);
        Ok(())
    }

    /// Completes the file: its size and sniffed type.
    pub async fn finish(mut self) -> Result<StoredBytes, FileError> {
        let decided = match (self.size, &self.content_type) {
            (0, _) => Err(FileError::Empty),
            (_, None) => self.decide_type(),
            (_, Some(_)) => Ok(()),
        };
        if let Err(error) = decided {
            self.abort().await;
            return Err(error);
        }
        let content_type = self.content_type.take().unwrap_or_default();
        if let Some(writer) = self.writer.take() {
            writer.finish().await?;
        }
        Ok(StoredBytes {
            size: self.size,
            content_type,
        })
    }

    /// Gives up the file and removes what was written.
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            abort_quietly(writer).await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(abort_quietly(writer));
        }
    }
}

async fn abort_quietly(writer: WriteMultipart) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%error, "could not abort an upload");
    }
}

/// The files one request has stored so far: dropped before [`StoredSoFar::keep`] (a refusal,
/// or the client gone mid-request), their bytes are removed in the background, so a refused
/// or abandoned request leaves nothing behind.
pub struct StoredSoFar {
    store: FileStore,
    ids: Vec<Uuid>,
}

impl StoredSoFar {
    pub fn new(store: &FileStore) -> Self {
        Self {
            store: store.clone(),
            ids: Vec::new(),
        }
    }

    pub fn push(&mut self, id: Uuid) {
        self.ids.push(id);
    }

    /// They are recorded: keep them.
    pub fn keep(mut self) {
        self.ids.clear();
    }

    /// The request is refused: remove them now (the answer waits for it).
    pub async fn discard(mut self) {
        for id in std::mem::take(&mut self.ids) {
            if let Err(error) = self.store.delete(id).await {
                tracing::warn!(%error, file = %id, "could not remove the bytes of a refused upload");
            }
        }
    }
}

impl Drop for StoredSoFar {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut self.ids);
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for id in ids {
                    if let Err(error) = store.delete(id).await {
                        tracing::warn!(%error, file = %id, "could not remove the bytes of a refused upload");
                    }
                }
            });
        }
    }
}

/// How many uploads each user may have running at once (`FILE_MAX_CONCURRENT_UPLOADS`): each
/// holds a store upload and up to three 5 MiB buffers, so a user may not open hundreds.
#[derive(Clone)]
pub struct UploadSlots {
    max: usize,
    taken: Arc<std::sync::Mutex<std::collections::HashMap<Uuid, usize>>>,
}

/// One running upload of a user's; the slot frees itself when dropped.
pub struct UploadSlot {
    user: Uuid,
    taken: Arc<std::sync::Mutex<std::collections::HashMap<Uuid, usize>>>,
}

impl UploadSlots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            taken: Arc::default(),
        }
    }

    /// A slot for `user`, unless they have `max` uploads running.
    pub fn try_take(&self, user: Uuid) -> Option<UploadSlot> {
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = taken.entry(user).or_default();
        if *running >= self.max {
            return None;
        }
        *running += 1;
        Some(UploadSlot {
            user,
            taken: self.taken.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = taken.get_mut(&self.user) {
            *running -= 1;
            if *running == 0 {
                taken.remove(&self.user);
            }
        }
    }
}
