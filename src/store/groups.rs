//! Group administration: renaming, adding and removing members, leaving.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::conversations::select_conversations;
use super::messages::insert_message;
use super::{
    Conversation, Dialect, Message, NewEvent, NewMessage, Store, StoreError, StoreResult, User, commit_with_events,
    with_backend, with_writer,
};
use crate::domain::MemberChange;

/// Appends to conversation `$conversation` (whose lock transaction `$tx` holds) the system
/// message from `$actor` telling `$change` of `$user`; evaluates to the message. In the
/// transaction of the change itself, so that the change and its message land together.
macro_rules! append_system_message {
    ($tx:ident, $conversation:expr, $actor:expr, $change:expr, $user:expr, $now:expr) => {{
        let (change, user): (MemberChange, &User) = ($change, $user);
        let new = NewMessage {
            id: Uuid::now_v7(),
            conversation_id: $conversation,
            sender_id: $actor,
            content: change.text(&user.name),
            client_id: None,
            reply_to: None,
            x: Some(change.x(user.id, &user.name)),
            created_at: $now,
        };
        let seq: i64 = sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_id = $2, updated_at = $3
             WHERE id = $1 RETURNING last_seq",
        )
        .bind(new.conversation_id)
        .bind(new.id)
        .bind(new.created_at)
        .fetch_one(&mut *$tx)
        .await?;
        let message: Message = insert_message!($tx, &new, seq, None)?;
        message
    }};
}

/// What a `PATCH /conversation/{id}` asks for.
#[derive(Clone, Debug, Default)]
pub struct GroupChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub add: Vec<Uuid>,
    pub remove: Vec<Uuid>,
    /// Keep renaming and describing to the owner (`Some(true)`) or open it to all members.
    pub only_owner_renames: Option<bool>,
}

/// What a group change did: the group as the actor now sees it, who came, who went, and the
/// system messages that told the group.
#[derive(Clone, Debug)]
pub struct GroupUpdate {
    pub conversation: Conversation,
    pub added: Vec<User>,
    pub removed: Vec<User>,
    pub messages: Vec<Message>,
}

/// A participant's view of a conversation's kind, owner and chat-request state.
pub(super) struct Membership {
    pub is_group: bool,
    /// A group's owner (`None` for direct conversations).
    pub owner: Option<Uuid>,
    /// `pending`, `accepted` or `declined` for chat requests; `None` otherwise.
    pub request_status: Option<String>,
    /// Only the owner may rename or describe the group.
    pub only_owner_renames: bool,
}

/// What leaving did.
#[derive(Clone, Debug)]
pub enum Left {
    /// A direct conversation, now out of the leaver's list until a new message.
    Hidden,
    /// Out of the group; `message` told the rest.
    Group { message: Box<Message> },
    /// The last member left: the group is gone.
    Deleted,
}

impl Store {
    /// What `user` may need to know about a conversation they are in; `None` when they are not
    /// in it (or it does not exist).
    pub(super) async fn membership(&self, user: Uuid, conversation: Uuid) -> StoreResult<Option<Membership>> {
        let found = with_backend!(self, |pool| {
            sqlx::query_as::<_, (String, Option<Uuid>, Option<String>, bool)>(
                "SELECT c.kind, c.owner_id, c.request_status, c.only_owner_renames FROM conversations c
                 JOIN participants p ON p.conversation_id = c.id AND p.user_id = $2
                 WHERE c.id = $1",
            )
            .bind(conversation)
            .bind(user)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            found.map(|(kind, owner, request_status, only_owner_renames)| Membership {
                is_group: kind == "group",
                owner,
                request_status,
                only_owner_renames,
            }),
        )
    }

    /// Applies `changes` to a group as `actor`, in one transaction with a system message per
    /// member added or removed and the events `events` gives. Anyone in the group may rename
    /// it unless its owner kept that to themselves; only its owner may change members and
    /// that setting.
    pub async fn update_group(
        &self,
        actor: Uuid,
        conversation: Uuid,
        changes: &GroupChanges,
        now: DateTime<Utc>,
        events: impl Fn(&GroupUpdate) -> Vec<NewEvent>,
    ) -> StoreResult<GroupUpdate> {
        let Membership {
            is_group,
            owner,
            only_owner_renames,
            ..
        } = self
            .membership(actor, conversation)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        if !is_group {
            return Err(StoreError::Invalid {
                field: "conversation",
                problem: "a direct conversation has exactly two participants and no name".into(),
            });
        }
        let changes_members = !changes.add.is_empty() || !changes.remove.is_empty();
        if changes_members && owner != Some(actor) {
            return Err(StoreError::Forbidden(
                "only the group's owner may add or remove members",
            ));
        }
        if changes.only_owner_renames.is_some() && owner != Some(actor) {
            return Err(StoreError::Forbidden(
                "only the group's owner may choose who renames the group",
            ));
        }
        let renames = changes.name.is_some() || changes.description.is_some();
        if renames && only_owner_renames && owner != Some(actor) {
            return Err(StoreError::Forbidden(
                "only the group's owner may rename or describe this group",
            ));
        }
        if owner.is_some_and(|owner| changes.remove.contains(&owner)) {
            return Err(StoreError::Invalid {
                field: "participants",
                problem: "the owner cannot be removed (leave with DELETE instead)".into(),
            });
        }
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let lock = sqlx::AssertSqlSafe(format!("SELECT {}", pool.lock_conversation()));
            sqlx::query(lock).bind(conversation).execute(&mut *tx).await?;
            if renames || changes.only_owner_renames.is_some() {
                sqlx::query(
                    "UPDATE conversations SET name = COALESCE($2, name),
                         description = CASE WHEN $3 THEN $4 ELSE description END,
                         only_owner_renames = COALESCE($5, only_owner_renames)
                     WHERE id = $1",
                )
                .bind(conversation)
                .bind(&changes.name)
                .bind(changes.description.is_some())
                .bind(changes.description.clone().flatten())
                .bind(changes.only_owner_renames)
                .execute(&mut *tx)
                .await?;
            }
            let mut added = Vec::new();
            for user in &changes.add {
                let found: Option<User> =
                    sqlx::query_as("SELECT id, name, email, created_at, updated_at FROM users WHERE id = $1")
                        .bind(user)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(found) = found else {
                    return Err(StoreError::Invalid {
                        field: "participants",
                        problem: format!("unknown user id: {user}"),
                    });
                };
                let inserted = sqlx::query(
                    "INSERT INTO participants (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(conversation)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() > 0 {
                    added.push(found);
                }
            }
            let mut removed = Vec::new();
            for user in &changes.remove {
                let found: Option<User> = sqlx::query_as(
                    "DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2
                     RETURNING user_id AS id,
                        (SELECT name FROM users WHERE id = $2) AS name, (SELECT email FROM users WHERE id = $2) AS email,
                        (SELECT created_at FROM users WHERE id = $2) AS created_at,
                        (SELECT updated_at FROM users WHERE id = $2) AS updated_at",
                )
                .bind(conversation)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                removed.extend(found);
            }
            let mut messages = Vec::new();
            for (change, users) in [(MemberChange::Added, &added), (MemberChange::Removed, &removed)] {
                for user in users {
                    messages.push(append_system_message!(tx, conversation, actor, change, user, now));
                }
            }
            let conversation = super::conversations::conversation_in_tx!(tx, actor, conversation);
            let update = GroupUpdate {
                conversation,
                added,
                removed,
                messages,
            };
            commit_with_events!(self, tx, events(&update), now);
            Ok(update)
        })
    }

    /// `user` leaves `conversation`: a group loses a member and gets a system message saying so
    /// (ownership passing to the longest-standing member, earliest joined then smallest id;
    /// the last one out deletes it),
    /// a direct conversation leaves the user's list until a new message. With the events
    /// `events` gives.
    pub async fn leave_conversation(
        &self,
        user: Uuid,
        conversation: Uuid,
        now: DateTime<Utc>,
        events: impl Fn(&Left) -> Vec<NewEvent>,
    ) -> StoreResult<Left> {
        let Membership { is_group, owner, .. } = self
            .membership(user, conversation)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let lock = sqlx::AssertSqlSafe(format!("SELECT {}", pool.lock_conversation()));
            sqlx::query(lock).bind(conversation).execute(&mut *tx).await?;
            let left = if !is_group {
                sqlx::query(
                    "UPDATE participants SET hidden_at_seq = (SELECT last_seq FROM conversations WHERE id = $1)
                     WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .execute(&mut *tx)
                .await?;
                Left::Hidden
            } else {
                sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                let next: Option<Uuid> = sqlx::query_scalar(
                    "SELECT user_id FROM participants WHERE conversation_id = $1 ORDER BY joined_at, user_id LIMIT 1",
                )
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?;
                match next {
                    None => {
                        sqlx::query("DELETE FROM conversations WHERE id = $1")
                            .bind(conversation)
                            .execute(&mut *tx)
                            .await?;
                        Left::Deleted
                    }
                    Some(next) => {
                        if owner == Some(user) {
                            sqlx::query("UPDATE conversations SET owner_id = $2 WHERE id = $1")
                                .bind(conversation)
                                .bind(next)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(
                                "UPDATE participants SET role = 'owner' WHERE conversation_id = $1 AND user_id = $2",
                            )
                            .bind(conversation)
                            .bind(next)
                            .execute(&mut *tx)
                            .await?;
                        }
                        let leaver: User =
                            sqlx::query_as("SELECT id, name, email, created_at, updated_at FROM users WHERE id = $1")
                                .bind(user)
                                .fetch_one(&mut *tx)
                                .await?;
                        let message = append_system_message!(tx, conversation, user, MemberChange::Left, &leaver, now);
                        Left::Group {
                            message: Box::new(message),
                        }
                    }
                }
            };
            commit_with_events!(self, tx, events(&left), now);
            Ok(left)
        })
    }
}
