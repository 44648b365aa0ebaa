//! Group administration: renaming, adding and removing members, leaving.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::chat_requests::SELECT_INVITATIONS;
use super::sql::user_columns;
use super::tx::{
    append_system_message, blockers_among, commit_with_events, conversation_in_tx, group_seats_taken, invite_to_group,
    join_group, lock_conversation, require_participant, users_by_id,
};
use super::{
    ChatRequest, Conversation, ConversationKind, Dialect, Forbidden, Invalid, Member, Message, NewEvent, Store,
    StoreError, StoreResult, User, with_writer,
};
use crate::domain::{MemberChange, MessagePolicy};

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
    /// Invitations made to users whose message policy is `requests`, instead of adding them.
    pub invited: Vec<ChatRequest>,
    /// Pending invitations withdrawn by removing the user.
    pub withdrawn: Vec<ChatRequest>,
    pub messages: Vec<Message>,
}

/// What creating a group did: the group as its owner sees it, and the invitations it made to
/// users whose message policy is `requests` (they are not members yet).
#[derive(Clone, Debug)]
pub struct GroupCreated {
    pub conversation: Conversation,
    pub invited: Vec<ChatRequest>,
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
    /// Applies `changes` to the member's group, in one transaction with a system message per
    /// member added or removed and the events `events` gives. Anyone in the group may rename
    /// it unless its owner kept that to themselves; only its owner may change members and
    /// that setting.
    pub async fn update_group(
        &self,
        member: &Member,
        changes: &GroupChanges,
        now: DateTime<Utc>,
        events: impl Fn(&GroupUpdate) -> Vec<NewEvent>,
    ) -> StoreResult<GroupUpdate> {
        let (actor, conversation) = (member.user(), member.conversation());
        if member.kind() != ConversationKind::Group {
            return Err(StoreError::Invalid(Invalid::NotAGroup));
        }
        if !changes.add.is_empty() || !changes.remove.is_empty() {
            member.require_owner(Forbidden::OwnerOnlyMembers)?;
        }
        if changes.only_owner_renames.is_some() {
            member.require_owner(Forbidden::OwnerOnlyRenamePolicy)?;
        }
        let renames = changes.name.is_some() || changes.description.is_some();
        if renames && member.only_owner_renames() {
            member.require_owner(Forbidden::OwnerOnlyRename)?;
        }
        if member.owner().is_some_and(|owner| changes.remove.contains(&owner)) {
            return Err(StoreError::Invalid(Invalid::OwnerRemoved));
        }
        self.refuse_declined_pairs(actor, &changes.add, now).await?;
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_conversation!(tx, pool, conversation)?;
            require_participant!(tx, conversation, actor)?;
            // Ownership as of now, under the lock: it may have passed on since the gate read it.
            let owner_only =
                !changes.add.is_empty() || !changes.remove.is_empty() || changes.only_owner_renames.is_some();
            if owner_only || (renames && member.only_owner_renames()) {
                let owner: Option<Uuid> = sqlx::query_scalar("SELECT owner_id FROM conversations WHERE id = $1")
                    .bind(conversation)
                    .fetch_one(&mut *tx)
                    .await?;
                if owner != Some(actor) {
                    return Err(StoreError::Forbidden(Forbidden::OwnerOnlyMembers));
                }
            }
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
            let mut invited = Vec::new();
            let since = self.declines_since(now);
            // Someone who blocks the actor is invited (hidden from them), never added.
            let blockers = blockers_among!(tx, actor, changes.add.iter().copied())?;
            for user in &changes.add {
                let found: Option<User> = sqlx::query_as(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1 AND deleted_at IS NULL"
                ))
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(found) = found else {
                    return Err(StoreError::Invalid(Invalid::UnknownUsers(vec![*user])));
                };
                if MessagePolicy::from_stored(&found.message_policy) == MessagePolicy::Requests
                    || blockers.contains(user)
                {
                    if let Some(hidden) = invite_to_group!(tx, conversation, actor, &found, now, since)? {
                        invited.push((found, hidden));
                    }
                    continue;
                }
                // Added outright (their policy allows it now): an old invitation is moot.
                if join_group!(tx, pool, conversation, *user, now)? {
                    added.push(found);
                }
            }
            if (!added.is_empty() || !invited.is_empty())
                && group_seats_taken!(tx, conversation)? > self.group_max_members
            {
                return Err(StoreError::Invalid(Invalid::GroupTooLarge(self.group_max_members())));
            }
            // Named in `remove` too: withdrawn again below.
            invited.retain(|(invitee, _): &(User, bool)| !changes.remove.contains(&invitee.id));
            let invited = if invited.is_empty() {
                Vec::new()
            } else {
                let name: Option<String> = sqlx::query_scalar("SELECT name FROM conversations WHERE id = $1")
                    .bind(conversation)
                    .fetch_one(&mut *tx)
                    .await?;
                let inviter = users_by_id!(tx, [actor])?.remove(0);
                invited
                    .iter()
                    .map(|(invitee, hidden)| {
                        ChatRequest::invitation(conversation, name.clone(), &inviter, invitee, now, *hidden)
                    })
                    .collect()
            };
            let mut removed = Vec::new();
            let mut withdrawn = Vec::new();
            for user in &changes.remove {
                // Removing someone invited withdraws the invitation (a decline's hold is kept
                // apart, in `invitation_declines`).
                let invitation: Option<ChatRequest> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{SELECT_INVITATIONS} WHERE i.conversation_id = $1 AND i.user_id = $2 AND i.status = 'pending'"
                )))
                .bind(conversation)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM group_invitations WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                withdrawn.extend(invitation.map(ChatRequest::withdrawn));
                let deleted = sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() > 0 {
                    removed.extend(users_by_id!(tx, [*user])?);
                }
            }
            let mut messages = Vec::new();
            for (change, users) in [(MemberChange::Added, &added), (MemberChange::Removed, &removed)] {
                for user in users {
                    messages.push(append_system_message!(tx, conversation, actor, change, user, now)?);
                }
            }
            let conversation = conversation_in_tx!(tx, actor, conversation)?;
            let update = GroupUpdate {
                conversation,
                added,
                removed,
                invited,
                withdrawn,
                messages,
            };
            commit_with_events!(self, tx, events(&update), now)?;
            Ok(update)
        })
    }

    /// The member leaves their conversation: a group loses a member and gets a system message saying so
    /// (ownership passing to the longest-standing member, earliest joined then smallest id;
    /// the last one out deletes it),
    /// a direct conversation leaves the user's list until a new message. With the events
    /// `events` gives.
    pub async fn leave_conversation(
        &self,
        member: &Member,
        now: DateTime<Utc>,
        events: impl Fn(&Left) -> Vec<NewEvent>,
    ) -> StoreResult<Left> {
        let (user, conversation) = (member.user(), member.conversation());
        let is_group = member.kind() == ConversationKind::Group;
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            lock_conversation!(tx, pool, conversation)?;
            require_participant!(tx, conversation, user)?;
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
                        // The owner as of now, under the lock: two leaving at once must not
                        // hand the group to one who already left.
                        let owner: Option<Uuid> =
                            sqlx::query_scalar("SELECT owner_id FROM conversations WHERE id = $1")
                                .bind(conversation)
                                .fetch_one(&mut *tx)
                                .await?;
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
                            sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
                                .bind(user)
                                .fetch_one(&mut *tx)
                                .await?;
                        let message = append_system_message!(tx, conversation, user, MemberChange::Left, &leaver, now)?;
                        Left::Group {
                            message: Box::new(message),
                        }
                    }
                }
            };
            commit_with_events!(self, tx, events(&left), now)?;
            Ok(left)
        })
    }
}
