//! Users and their credentials.

use uuid::Uuid;

use super::sql::{ACTIVE_CONVERSATION, CONTACTS_OF, push_ids, user_columns};
use super::tx::{commit_with_events, lock_conversation};
use super::{
    Conflict, Dialect, Forbidden, Invalid, NewEvent, NewUser, ProfileChanges, Store, StoreError, StoreResult, User,
    UserCredentials, UserSearch, is_unique_violation, with_backend, with_writer,
};

impl Store {
    /// Stores a new user; `Conflict(email_taken)` when the email is registered already.
    pub async fn create_user(&self, new_user: &NewUser) -> StoreResult<User> {
        with_writer!(self, |pool| {
            let inserted = sqlx::query_as::<_, User>(concat!(
                "INSERT INTO users (id, name, search_name, email, password_hash, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 RETURNING ",
                user_columns!()
            ))
            .bind(new_user.id)
            .bind(&new_user.name)
            .bind(new_user.name.to_lowercase())
            .bind(&new_user.email)
            .bind(&new_user.password_hash)
            .bind(new_user.created_at)
            .fetch_one(pool)
            .await;
            inserted.map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::Conflict(Conflict::EmailTaken)
                } else {
                    error.into()
                }
            })
        })
    }

    pub async fn find_credentials_by_email(&self, email: &str) -> StoreResult<Option<UserCredentials>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, UserCredentials>(concat!(
                "SELECT ",
                user_columns!(),
                ", password_hash FROM users WHERE email = $1"
            ))
            .bind(email)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn find_user(&self, id: Uuid) -> StoreResult<Option<User>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, User>(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE id = $1 AND deleted_at IS NULL"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Applies `changes` to `user`'s profile and appends the events `events` makes of the
    /// result and of the people to tell (their conversation partners, when what they see
    /// changed; nobody else), in one transaction; the user as now stored. Changing nothing
    /// writes nothing. `Conflict` when the email or phone is someone else's, `NotFound` if
    /// the user is gone.
    pub async fn update_profile(
        &self,
        user: Uuid,
        changes: &ProfileChanges,
        now: chrono::DateTime<chrono::Utc>,
        events: impl Fn(&User, &[Uuid]) -> Vec<NewEvent>,
    ) -> StoreResult<User> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // Before any write: one user's profile changes commit in the order of their
            // events (see `Dialect::LOCK_CONVERSATION`; the key is the user's id).
            lock_conversation!(tx, pool, user)?;
            let current: User = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("user"))?;
            let differs = |change: Option<&String>, now: &String| change.is_some_and(|change| change != now);
            // What others see: only then are they told.
            let public_changed = differs(changes.name.as_ref(), &current.name)
                || differs(changes.about.as_ref(), &current.about)
                || changes.avatar.is_some_and(|avatar| avatar != current.avatar_id);
            let private_changed = differs(changes.email.as_ref(), &current.email)
                || changes.phone.as_ref().is_some_and(|phone| *phone != current.phone)
                || changes
                    .message_policy
                    .is_some_and(|policy| policy.as_str() != current.message_policy);
            if !public_changed && !private_changed {
                return Ok(current);
            }
            let claimed = [
                ("email", changes.email.as_deref(), Conflict::EmailTaken),
                (
                    "phone",
                    changes.phone.as_ref().and_then(Option::as_deref),
                    Conflict::PhoneTaken,
                ),
            ];
            for (column, value, conflict) in claimed {
                let Some(value) = value else { continue };
                let sql = sqlx::AssertSqlSafe(format!("SELECT 1 FROM users WHERE {column} = $1 AND id <> $2"));
                let found: Option<i32> = sqlx::query_scalar(sql)
                    .bind(value)
                    .bind(user)
                    .fetch_optional(&mut *tx)
                    .await?;
                if found.is_some() {
                    return Err(StoreError::Conflict(conflict));
                }
            }
            if let Some(Some(avatar)) = changes.avatar {
                // The user's own uploaded image, with its thumbnail.
                let usable: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM files WHERE id = $1 AND owner_id = $2 AND state = 'ready'
                       AND content_type LIKE 'image/%' AND thumbnail_type IS NOT NULL",
                )
                .bind(avatar)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                if usable.is_none() {
                    return Err(StoreError::Invalid(Invalid::UnusableAvatar));
                }
            }
            let mut update = sqlx::QueryBuilder::new("UPDATE users SET updated_at = ");
            update.push_bind(now);
            if let Some(name) = &changes.name {
                update.push(", name = ").push_bind(name);
                update.push(", search_name = ").push_bind(name.to_lowercase());
            }
            if let Some(about) = &changes.about {
                update.push(", about = ").push_bind(about);
            }
            if let Some(phone) = &changes.phone {
                update.push(", phone = ").push_bind(phone.clone());
            }
            if let Some(email) = &changes.email {
                update.push(", email = ").push_bind(email);
            }
            if let Some(policy) = changes.message_policy {
                update.push(", message_policy = ").push_bind(policy.as_str());
            }
            if let Some(avatar) = changes.avatar {
                update.push(", avatar_id = ").push_bind(avatar);
            }
            update.push(" WHERE id = ").push_bind(user);
            update.push(concat!(" RETURNING ", user_columns!()));
            let updated: Option<User> = match update.build_query_as().fetch_optional(&mut *tx).await {
                Ok(updated) => updated,
                // Taken by a concurrent change since the checks above.
                Err(error) if is_unique_violation(&error) => {
                    return Err(StoreError::Conflict(if error.to_string().contains("phone") {
                        Conflict::PhoneTaken
                    } else {
                        Conflict::EmailTaken
                    }));
                }
                Err(error) => return Err(error.into()),
            };
            let updated = updated.ok_or(StoreError::NotFound("user"))?;
            let partners: Vec<Uuid> = if public_changed {
                sqlx::query_scalar(sqlx::AssertSqlSafe(CONTACTS_OF))
                    .bind(user)
                    .fetch_all(&mut *tx)
                    .await?
            } else {
                Vec::new()
            };
            commit_with_events!(self, tx, events(&updated, &partners), now)?;
            Ok(updated)
        })
    }

    /// `user`'s password hash (`None` if the user is gone).
    pub async fn password_hash_of(&self, user: Uuid) -> StoreResult<Option<String>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// Replaces `user`'s password hash `verified` (the one the caller confirmed) by
    /// `password_hash` and ends every session of theirs but `keep`, in one transaction; the
    /// ended sessions' ids. `Forbidden` if the hash changed since it was confirmed, or `keep`
    /// ended meanwhile (a concurrent change). Under the user's lock, as logins open sessions
    /// (see [`Store::create_session`]). The profile's `updatedAt` does not move: others are
    /// not told when a password changes.
    pub async fn set_password(
        &self,
        user: Uuid,
        verified: &str,
        password_hash: &str,
        keep: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_conversation!(tx, pool, user)?;
            let changed = sqlx::query(
                "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3
                   AND EXISTS (SELECT 1 FROM sessions WHERE id = $4 AND user_id = $1 AND revoked_at IS NULL)",
            )
            .bind(user)
            .bind(password_hash)
            .bind(verified)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() == 0 {
                return Err(StoreError::Forbidden(Forbidden::CredentialsChanged));
            }
            let ended: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL
                 RETURNING id",
            )
            .bind(user)
            .bind(keep)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1 AND session_id <> $2")
                .bind(user)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ended)
        })
    }

    /// A batch of at most `limit` messages `user` sent that are not deleted yet, in
    /// conversations they are still in: `(conversation, message)`, grouped by conversation.
    pub async fn undeleted_messages_of(&self, user: Uuid, limit: u32) -> StoreResult<Vec<(Uuid, Uuid)>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT m.conversation_id, m.id FROM messages m
                 JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = m.sender_id
                 WHERE m.sender_id = $1 AND m.deleted_at IS NULL
                 ORDER BY m.conversation_id, m.seq LIMIT $2",
            )
            .bind(user)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })
    }

    /// The groups `user` is in.
    pub async fn groups_of(&self, user: Uuid) -> StoreResult<Vec<Uuid>> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar(
                "SELECT c.id FROM participants p JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.user_id = $1 AND c.kind = 'group'",
            )
            .bind(user)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Deletes `user`'s account, if their password is still `verified` (`Forbidden` if it
    /// changed since the caller confirmed it): every session ends (their ids are returned, to
    /// close their streams), the email and phone become free, the profile goes ("Deleted
    /// user"), and so do their stars, blocks (both ways), address book, open streams, presence
    /// subscriptions (both ways) and invitations. The row stays, so that conversations and
    /// messages keep their sender. With the events `events` gives for the user as now stored
    /// and the people who saw them.
    pub async fn delete_account(
        &self,
        user: Uuid,
        verified: &str,
        now: chrono::DateTime<chrono::Utc>,
        events: impl Fn(&User, &[Uuid]) -> Vec<NewEvent>,
    ) -> StoreResult<Vec<Uuid>> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_conversation!(tx, pool, user)?;
            let partners: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(CONTACTS_OF))
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
            // A random address: nobody can register it beforehand to make the deletion fail.
            let freed_email = format!("deleted-{}@deleted.invalid", Uuid::now_v7().simple());
            let deleted: Option<User> = sqlx::query_as(concat!(
                "UPDATE users SET name = 'Deleted user', search_name = '', email = $3, phone = NULL, about = '',
                     password_hash = '!', presence_status = 'auto', avatar_id = NULL, deleted_at = $4, updated_at = $4
                 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL
                 RETURNING ",
                user_columns!()
            ))
            .bind(user)
            .bind(verified)
            .bind(&freed_email)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let deleted = deleted.ok_or(StoreError::Forbidden(Forbidden::CredentialsChanged))?;
            let ended: Vec<Uuid> = sqlx::query_scalar("DELETE FROM sessions WHERE user_id = $1 RETURNING id")
                .bind(user)
                .fetch_all(&mut *tx)
                .await?;
            for cleanup in [
                "DELETE FROM starred_messages WHERE user_id = $1",
                "DELETE FROM push_subscriptions WHERE user_id = $1",
                "DELETE FROM user_blocks WHERE blocker_id = $1 OR blocked_id = $1",
                "DELETE FROM contacts WHERE owner_id = $1",
                // The address book's events held other people's emails and phones.
                "DELETE FROM events WHERE user_id = $1 AND kind LIKE 'contact.%'",
                "DELETE FROM presence_subscriptions WHERE target_id = $1",
                "DELETE FROM streams WHERE user_id = $1",
                "DELETE FROM presence WHERE user_id = $1",
                "DELETE FROM group_invitations WHERE user_id = $1 OR inviter_id = $1",
                "DELETE FROM invitation_declines WHERE user_id = $1 OR inviter_id = $1",
                // The groups were left one by one before (system messages, ownership passed);
                // one joined meanwhile is left here.
                "DELETE FROM participants WHERE user_id = $1
                   AND conversation_id IN (SELECT id FROM conversations WHERE kind = 'group')",
            ] {
                sqlx::query(cleanup).bind(user).execute(&mut *tx).await?;
            }
            commit_with_events!(self, tx, events(&deleted, &partners), now)?;
            Ok(ended)
        })
    }

    /// Those of `ids` that are users (callers bound the list), in no particular order.
    pub async fn users_by_ids(&self, ids: &[Uuid]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE deleted_at IS NULL AND id IN "
            ));
            push_ids(&mut builder, ids.iter().copied());
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })
    }

    /// Users the caller may find, except the caller, by name: with a keyword, those whose
    /// name contains it, or whose email is exactly it (so people find each other by address
    /// without anyone listing addresses); without one, the people the caller talks with.
    pub async fn search_users(&self, search: &UserSearch) -> StoreResult<Vec<User>> {
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE deleted_at IS NULL AND id <> "
            ));
            builder.push_bind(search.caller);
            push_no_block_with(&mut builder, "id", search.caller);
            if search.keyword.is_empty() {
                builder.push(format!(
                    " AND id IN (SELECT other.user_id FROM participants mine
                        JOIN conversations c ON c.id = mine.conversation_id
                        JOIN participants other ON other.conversation_id = mine.conversation_id
                        WHERE {ACTIVE_CONVERSATION} AND mine.user_id = "
                ));
                builder.push_bind(search.caller);
                builder.push(")");
            } else {
                builder.push(" AND (search_name LIKE ");
                builder.push_bind(format!("%{}%", escape_like(&search.keyword)));
                builder.push(" ESCAPE '\\' OR email = ");
                builder.push_bind(&search.keyword);
                builder.push(")");
            }
            if let Some(after) = search.after_user {
                builder.push(" AND (search_name, id) > (SELECT search_name, id FROM users WHERE id = ");
                builder.push_bind(after);
                builder.push(")");
            }
            if let Some(updated_after) = search.updated_after {
                builder.push(" AND updated_at > ");
                builder.push_bind(updated_after);
            }
            if !search.ignore.is_empty() {
                builder.push(" AND id NOT IN ");
                push_ids(&mut builder, search.ignore.iter().copied());
            }
            builder.push(" ORDER BY search_name, id LIMIT ");
            builder.push_bind(i64::from(search.limit));
            Ok(builder.build_query_as::<User>().fetch_all(pool).await?)
        })
    }
}

/// Appends ` AND` "no block either way between `column` and `user`" to a query being built.
pub(super) fn push_no_block_with<DB>(builder: &mut sqlx::QueryBuilder<DB>, column: &str, user: Uuid)
where
    DB: sqlx::Database,
    Uuid: for<'value> sqlx::Encode<'value, DB> + sqlx::Type<DB>,
{
    builder.push(format!(
        " AND NOT EXISTS (SELECT 1 FROM user_blocks ub WHERE (ub.blocker_id = {column} AND ub.blocked_id = "
    ));
    builder.push_bind(user);
    builder.push(format!(") OR (ub.blocked_id = {column} AND ub.blocker_id = "));
    builder.push_bind(user);
    builder.push("))");
}

/// Makes `%`, `_` and `\` in user input match themselves in a `LIKE ... ESCAPE '\'`.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_keywords_match_literally() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(escape_like("ana"), "ana");
    }
}
