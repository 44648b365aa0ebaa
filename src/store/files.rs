//! What the API knows of uploaded files (the bytes are in the file store, `crate::files`), and
//! who may read them: their uploader, and the participants of a conversation where a message
//! that was not deleted for everyone carries them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult, with_backend, with_writer};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredFile {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub created_at: DateTime<Utc>,
}

const FILE_COLUMNS: &str = "f.id, f.owner_id, f.name, f.size, f.content_type, f.width, f.height, f.created_at";

/// Rows of `files f` that user `$2` may read.
const READABLE_BY: &str = "f.state = 'ready' AND (f.owner_id = $2 OR EXISTS (
        SELECT 1 FROM message_files mf
        JOIN messages m ON m.id = mf.message_id AND m.deleted_at IS NULL
        JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = $2
        WHERE mf.file_id = f.id))";

impl Store {
    /// Records a file whose bytes are stored and checked.
    pub async fn insert_file(&self, file: &StoredFile) -> StoreResult<()> {
        with_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO files (id, owner_id, name, size, content_type, width, height, state, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'ready', $8)",
            )
            .bind(file.id)
            .bind(file.owner_id)
            .bind(&file.name)
            .bind(file.size)
            .bind(&file.content_type)
            .bind(file.width)
            .bind(file.height)
            .bind(file.created_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// File `id`, if `user` may read it.
    pub async fn readable_file(&self, user: Uuid, id: Uuid) -> StoreResult<Option<StoredFile>> {
        Ok(self.readable_files(user, &[id]).await?.pop())
    }

    /// Those of `ids` that `user` may read (at most as many as `ids`; callers bound the list).
    pub async fn readable_files(&self, user: Uuid, ids: &[Uuid]) -> StoreResult<Vec<StoredFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut found = Vec::with_capacity(ids.len());
            // One indexed lookup per id: lists are at most 100 long.
            for id in ids {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {FILE_COLUMNS} FROM files f WHERE f.id = $1 AND {READABLE_BY}"
                ));
                let file: Option<StoredFile> = sqlx::query_as(sql).bind(id).bind(user).fetch_optional(pool).await?;
                found.extend(file);
            }
            Ok(found)
        })
    }
}
