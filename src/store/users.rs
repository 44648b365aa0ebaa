//! Users and their credentials.

use uuid::Uuid;

use crate::domain::MessagePolicy;

use super::sql::{ACTIVE_CONVERSATION, user_columns};
use super::{
    Conflict, NewUser, Store, StoreError, StoreResult, User, UserCredentials, UserSearch, is_unique_violation,
    with_backend, with_writer,
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
            Ok(
                sqlx::query_as::<_, User>(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
            )
        })
    }

    /// Sets `user`'s message policy; the user as now stored (`NotFound` if gone).
    pub async fn set_message_policy(
        &self,
        user: Uuid,
        policy: MessagePolicy,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<User> {
        with_writer!(self, |pool| {
            let updated = sqlx::query_as::<_, User>(concat!(
                "UPDATE users SET message_policy = $2, updated_at = $3 WHERE id = $1 RETURNING ",
                user_columns!()
            ))
            .bind(user)
            .bind(policy.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            updated.ok_or(StoreError::NotFound("user"))
        })
    }

    /// Users the caller may find, except the caller, by name: with a keyword, those whose
    /// name contains it, or whose email is exactly it (so people find each other by address
    /// without anyone listing addresses); without one, the people the caller talks with.
    pub async fn search_users(&self, search: &UserSearch) -> StoreResult<Vec<User>> {
        let pattern = format!("%{}%", escape_like(&search.keyword));
        let found = if search.keyword.is_empty() {
            format!(
                "id IN (SELECT other.user_id FROM participants mine
                        JOIN conversations c ON c.id = mine.conversation_id
                        JOIN participants other ON other.conversation_id = mine.conversation_id
                        WHERE mine.user_id = $1 AND {ACTIVE_CONVERSATION})"
            )
        } else {
            "(search_name LIKE $2 ESCAPE '\\' OR email = $5)".to_string()
        };
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT {columns} FROM users
                 WHERE id <> $1 AND {found}
                   AND ($3 IS NULL OR (search_name, id) > (SELECT search_name, id FROM users WHERE id = $3))
                 ORDER BY search_name, id
                 LIMIT $4",
                columns = user_columns!(),
            ));
            Ok(sqlx::query_as::<_, User>(sql)
                .bind(search.caller)
                .bind(&pattern)
                .bind(search.after_user)
                .bind(i64::from(search.limit))
                .bind(&search.keyword)
                .fetch_all(pool)
                .await?)
        })
    }
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
