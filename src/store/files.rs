//! What the API knows of uploaded files (the bytes are in the file store, `crate::files`), and
//! who may read them: their uploader, and the participants of a conversation where a message
//! that was not deleted for everyone carries them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::push_ids;
use super::tx::lock_conversation;
use super::{Dialect, Store, StoreResult, with_backend, with_writer};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredFile {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// Of a photo's thumbnail (`None`: it has none).
    pub thumbnail_type: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A file of a message, as `tx::attach_files!` reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct AttachmentRow {
    pub message_id: Uuid,
    #[sqlx(flatten)]
    pub file: StoredFile,
}

/// A link of a message, as `tx::attach_files!` reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct LinkRow {
    pub message_id: Uuid,
    #[sqlx(flatten)]
    pub link: super::MessageLink,
}

/// What user `$1`'s files take, in bytes: every row counts, pending two-step uploads at their
/// declared size.
const BYTES_STORED_BY: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE owner_id = $1";

pub(crate) const FILE_COLUMNS: &str =
    "f.id, f.owner_id, f.name, f.size, f.content_type, f.width, f.height, f.thumbnail_type, f.created_at";

/// Where a file is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Announced by a two-step upload; its bytes are not checked yet (size and type are the
    /// client's declaration). Usable by no one.
    Pending,
    /// Bytes complete and checked.
    Ready,
}

impl FileState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
        }
    }
}

#[derive(sqlx::FromRow)]
struct OwnFileRow {
    #[sqlx(flatten)]
    file: StoredFile,
    state: String,
}

impl Store {
    /// Records files (all or none): uploaded ones `Ready`, announced ones `Pending`. With a
    /// `quota`, only if the owner's files, these included, stay within it (`false`
    /// otherwise): checked under a lock on the owner, so that uploads racing each other
    /// cannot pass it together.
    pub async fn insert_files(&self, files: &[StoredFile], state: FileState, quota: Option<u64>) -> StoreResult<bool> {
        let Some(owner) = files.first().map(|file| file.owner_id) else {
            return Ok(true);
        };
        debug_assert!(files.iter().all(|file| file.owner_id == owner));
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if let Some(quota) = quota {
                // The conversation lock's mechanism, keyed by the owner: ids never collide.
                lock_conversation!(tx, pool, owner)?;
                let used: i64 = sqlx::query_scalar(BYTES_STORED_BY)
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await?;
                let adding: i64 = files.iter().map(|file| file.size).sum();
                if u64::try_from(used.saturating_add(adding)).unwrap_or(u64::MAX) > quota {
                    return Ok(false);
                }
            }
            for file in files {
                sqlx::query(
                    "INSERT INTO files (id, owner_id, name, size, content_type, width, height, thumbnail_type, state, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(file.id)
                .bind(file.owner_id)
                .bind(&file.name)
                .bind(file.size)
                .bind(&file.content_type)
                .bind(file.width)
                .bind(file.height)
                .bind(&file.thumbnail_type)
                .bind(state.as_str())
                .bind(file.created_at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// `owner`'s file `id`, in whatever state.
    pub async fn own_file(&self, owner: Uuid, id: Uuid) -> StoreResult<Option<(StoredFile, FileState)>> {
        let row: Option<OwnFileRow> = with_backend!(self, |pool| {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {FILE_COLUMNS}, f.state FROM files f WHERE f.id = $1 AND f.owner_id = $2"
            )))
            .bind(id)
            .bind(owner)
            .fetch_optional(pool)
            .await?)
        })?;
        Ok(row.map(|row| {
            let state = if row.state == "pending" {
                FileState::Pending
            } else {
                FileState::Ready
            };
            (row.file, state)
        }))
    }

    /// Makes pending file `file` ready with what its checked bytes showed (`file`'s type,
    /// size, dimensions and thumbnail). `false` if it was not pending (completed meanwhile,
    /// or swept).
    pub async fn complete_file(&self, file: &StoredFile) -> StoreResult<bool> {
        with_writer!(self, |pool| {
            let updated = sqlx::query(
                "UPDATE files SET state = 'ready', size = $2, content_type = $3, width = $4, height = $5,
                        thumbnail_type = $6
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(file.id)
            .bind(file.size)
            .bind(&file.content_type)
            .bind(file.width)
            .bind(file.height)
            .bind(&file.thumbnail_type)
            .execute(pool)
            .await?;
            Ok(updated.rows_affected() > 0)
        })
    }

    /// Those of `ids` that are `owner`'s pending files.
    pub async fn pending_files(&self, owner: Uuid, ids: &[Uuid]) -> StoreResult<Vec<StoredFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.state = 'pending' AND f.owner_id = "
            ));
            builder.push_bind(owner);
            builder.push(" AND f.id IN ");
            push_ids(&mut builder, ids.iter().copied());
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// File `id`, if `user` may read it.
    pub async fn readable_file(&self, user: Uuid, id: Uuid) -> StoreResult<Option<StoredFile>> {
        Ok(self.readable_files(user, &[id]).await?.pop())
    }

    /// Those of `ids` that `user` may read, in one query (callers bound the list).
    pub async fn readable_files(&self, user: Uuid, ids: &[Uuid]) -> StoreResult<Vec<StoredFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT {FILE_COLUMNS} FROM files f WHERE f.state = 'ready' AND f.id IN "
            ));
            push_ids(&mut builder, ids.iter().copied());
            builder.push(" AND (f.owner_id = ");
            builder.push_bind(user);
            builder.push(
                " OR EXISTS (SELECT 1 FROM message_files mf
                   JOIN messages m ON m.id = mf.message_id AND m.deleted_at IS NULL
                   JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = ",
            );
            builder.push_bind(user);
            builder.push(
                " WHERE mf.file_id = f.id)
                  OR EXISTS (SELECT 1 FROM users au WHERE au.avatar_id = f.id AND au.deleted_at IS NULL))",
            );
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// How many bytes `owner`'s files take (for `FILE_QUOTA_BYTES`).
    pub async fn bytes_stored_by(&self, owner: Uuid) -> StoreResult<i64> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, i64>(BYTES_STORED_BY)
                .bind(owner)
                .fetch_one(pool)
                .await?)
        })
    }

    /// Up to `limit` files uploaded before `before` that no message carries: forgets each and
    /// returns their ids, for their bytes to be removed. A file attached meanwhile stays.
    pub async fn forget_orphan_files(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Uuid>> {
        with_writer!(self, |pool| {
            let candidates: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM files f WHERE f.created_at < $1
                   AND NOT EXISTS (SELECT 1 FROM message_files mf WHERE mf.file_id = f.id)
                   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_id = f.id)
                 ORDER BY f.created_at LIMIT $2",
            )
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut forgotten = Vec::with_capacity(candidates.len());
            for id in candidates {
                let deleted = sqlx::query(
                    "DELETE FROM files WHERE id = $1
                       AND NOT EXISTS (SELECT 1 FROM message_files mf WHERE mf.file_id = $1)
                       AND NOT EXISTS (SELECT 1 FROM users u WHERE u.avatar_id = $1)",
                )
                .bind(id)
                .execute(pool)
                .await?;
                if deleted.rows_affected() > 0 {
                    forgotten.push(id);
                }
            }
            Ok(forgotten)
        })
    }

    /// Forgets `owner`'s files `ids` (a send that stored them was refused); their bytes are the
    /// caller's to remove.
    pub async fn forget_files(&self, owner: Uuid, ids: &[Uuid]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        with_writer!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new("DELETE FROM files WHERE owner_id = ");
            builder.push_bind(owner);
            builder.push(" AND id IN ");
            push_ids(&mut builder, ids.iter().copied());
            builder.push(" AND NOT EXISTS (SELECT 1 FROM message_files mf WHERE mf.file_id = files.id)");
            builder.build().execute(pool).await?;
            Ok(())
        })
    }
}
