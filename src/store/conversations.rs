//! Conversations and their participants.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::MessagePolicy;

use super::event_log::withheld_from;
use super::sql::{direct_key, push_ids, read_position_seen_by, unread_count, user_columns};
use super::tx::{
    WITHHELD_RECEIPT, attach_files, blockers_among, commit_with_events, conversation_in_tx, invite_to_group,
    users_by_id, withheld_partner,
};
use super::{
    ChatRequest, Conversation, ConversationCursor, ConversationFlag, ConversationKind, ConversationRow, Dialect,
    Forbidden, GroupCreated, Invalid, Member, Message, MessageReference, NewEvent, NewGroup, ParticipantRow, Store,
    StoreError, StoreResult, User, with_backend, with_writer,
};

/// Conversations as participant `$1` sees them, with their last message. `$filter` is added
/// to the `WHERE` over the caller's participant rows (`p`) and conversations (`c`);
/// `$order_limit` orders and cuts that page, and orders the result the same way. The page is
/// chosen first and only its rows are joined to their last message, reply quote and counts,
/// so a caller with 1,000 conversations costs one sort of 1,000 small rows, not 1,000 joins.
macro_rules! select_conversations {
    ($filter:literal, $order_limit:literal) => {
        concat!(
            "WITH page AS (
                 SELECT p.conversation_id, p.user_id, p.last_read_seq, p.pinned_at, p.archived_at,
                        p.muted_at, p.muted_until
                 FROM participants p JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.user_id = $1 ",
            $filter,
            " ",
            $order_limit,
            ")
             SELECT c.id, c.kind, c.name, c.owner_id, c.description, c.only_owner_renames, c.request_status,
                (p.pinned_at IS NOT NULL) AS pinned, (p.archived_at IS NOT NULL) AS archived,
                p.muted_at, p.muted_until, c.created_at, c.updated_at,
                m.id AS last_message_id, m.seq AS last_message_seq, m.sender_id AS last_message_sender_id,
                u.name AS last_message_sender_name, m.content AS last_message_content,
                m.client_id AS last_message_client_id, m.created_at AS last_message_created_at,
                m.edited_at AS last_message_edited_at, m.x AS last_message_x,
                m.deleted_at AS last_message_deleted_at, ",
            $crate::store::sql::unread_count!(),
            " AS unread_count,
                r.id AS reply_id, r.sender_id AS reply_sender_id, ru.name AS reply_sender_name,
                r.content AS reply_content, ",
            $crate::store::sql::reply_attachment_type!(),
            "
             FROM page p
             JOIN conversations c ON c.id = p.conversation_id
             LEFT JOIN messages m ON m.id = COALESCE(
                 (SELECT c.last_message_id WHERE NOT EXISTS (
                      SELECT 1 FROM hidden_messages h WHERE h.user_id = p.user_id AND h.message_id = c.last_message_id)),
                 -- The last message is hidden from this participant (deleted for them, or
                 -- withheld by a block): the last one they may see.
                 (SELECT v.id FROM messages v WHERE v.conversation_id = c.id AND NOT EXISTS (
                      SELECT 1 FROM hidden_messages h WHERE h.user_id = p.user_id AND h.message_id = v.id)
                  ORDER BY v.seq DESC LIMIT 1))
             LEFT JOIN users u ON u.id = m.sender_id
             LEFT JOIN messages r ON r.id = m.reply_to
             LEFT JOIN users ru ON ru.id = r.sender_id ",
            $order_limit
        )
    };
}

pub(super) use select_conversations;

/// A conversation that was just created: no messages, nothing unread.
fn new_conversation(
    id: Uuid,
    kind: ConversationKind,
    name: Option<String>,
    owner_id: Option<Uuid>,
    participants: Vec<User>,
    now: DateTime<Utc>,
) -> Conversation {
    Conversation {
        id,
        kind,
        name,
        owner_id,
        description: None,
        only_owner_renames: false,
        request_status: None,
        read_positions: participants.iter().map(|user| (user.id, 0)).collect(),
        participants,
        last_message: None,
        unread_count: 0,
        pinned: false,
        archived: false,
        mute: None,
        created_at: now,
        updated_at: now,
    }
}

/// Puts the conversations of `rows` together with their participants (and read positions).
pub(super) fn assemble(rows: Vec<ConversationRow>, participants: Vec<ParticipantRow>) -> Vec<Conversation> {
    type UsersAndReadPositions = (Vec<User>, Vec<(Uuid, i64)>);
    let mut by_conversation: HashMap<Uuid, UsersAndReadPositions> = HashMap::new();
    for participant in participants {
        let (users, positions) = by_conversation.entry(participant.conversation_id).or_default();
        positions.push((participant.user.id, participant.last_read_seq));
        users.push(participant.user);
    }
    rows.into_iter()
        .map(|row| {
            let (users, positions) = by_conversation.remove(&row.id).unwrap_or_default();
            row.into_conversation(users, positions)
        })
        .collect()
}

impl Store {
    /// The direct conversation of `caller` and `other`, created if the pair has none.
    /// Returns it and whether it was created; `events` gives the events a creation appends.
    /// One per pair, also under concurrent requests: the unique `direct_key` decides, and the
    /// loser of a race reads the winner's row.
    pub async fn find_or_create_direct_conversation(
        &self,
        caller: Uuid,
        other: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        events: impl Fn(&Conversation) -> Vec<NewEvent>,
    ) -> StoreResult<(Conversation, bool)> {
        self.refuse_declined_pairs(caller, &[other], now).await?;
        let direct_key = direct_key(caller, other);
        let created = with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO conversations (id, kind, direct_key, created_at, updated_at)
                 VALUES ($1, 'direct', $2, $3, $3)
                 ON CONFLICT (direct_key) DO NOTHING
                 RETURNING id",
            )
            .bind(id)
            .bind(&direct_key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                tx.rollback().await?;
                return Ok(None);
            }
            {
                for user in [caller, other] {
                    sqlx::query(
                        "INSERT INTO participants (conversation_id, user_id, role, joined_at)
                         VALUES ($1, $2, 'member', $3)",
                    )
                    .bind(id)
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let participants = users_by_id!(tx, [caller, other])?;
                let conversation = new_conversation(id, ConversationKind::Direct, None, None, participants, now);
                commit_with_events!(self, tx, events(&conversation), now)?;
                Ok(Some(conversation))
            }
        })?;
        if let Some(conversation) = created {
            return Ok((conversation, true));
        }
        let existing = self.direct_conversation_of(caller, other).await?;
        // A chat request hidden from the caller (they block its requester): the caller now
        // starts the conversation, so it is theirs too from here on. What the requester sent
        // meanwhile stays hidden from them.
        with_writer!(self, |pool| {
            sqlx::query(
                "UPDATE conversations SET request_hidden = FALSE, request_status = 'accepted', request_answered_at = $3
                 WHERE id = $1 AND request_hidden AND requester_id <> $2",
            )
            .bind(existing)
            .bind(caller)
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })?;
        let member = self.member_of(caller, existing).await?;
        // A decline holds for the pair: this route does not reach the decliner either.
        if member.declined_since(self.declines_since(now)) {
            return Err(StoreError::Forbidden(Forbidden::ChatRequestDeclined));
        }
        Ok((self.conversation(&member).await?, false))
    }

    /// The id of the direct conversation of `one` and `other` (`NotFound` if none).
    pub(super) async fn direct_conversation_of(&self, one: Uuid, other: Uuid) -> StoreResult<Uuid> {
        let key = direct_key(one, other);
        let id: Option<Uuid> = with_backend!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
                .bind(&key)
                .fetch_optional(pool)
                .await?)
        })?;
        id.ok_or(StoreError::NotFound("conversation"))
    }

    /// `Forbidden(chat_request_declined)` if any of `users` declined a chat request or a group
    /// invitation of `requester`'s within the cooldown: a decline holds for the pair, so the
    /// requester can neither ask again nor put the decliner into a group.
    pub(super) async fn refuse_declined_pairs(
        &self,
        requester: Uuid,
        users: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let since = self.declines_since(now);
        let held: Option<i32> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT 1 FROM conversations
                 WHERE request_status = 'declined' AND COALESCE(request_answered_at, created_at) > ",
            );
            builder.push_bind(since);
            builder.push(" AND requester_id = ");
            builder.push_bind(requester);
            builder.push(" AND direct_key IN (");
            let mut keys = builder.separated(", ");
            for user in users {
                keys.push_bind(direct_key(requester, *user));
            }
            builder.push(") UNION ALL SELECT 1 FROM invitation_declines WHERE declined_at > ");
            builder.push_bind(since);
            builder.push(" AND inviter_id = ");
            builder.push_bind(requester);
            builder.push(" AND user_id IN ");
            push_ids(&mut builder, users.iter().copied());
            builder.push(" LIMIT 1");
            Ok(builder.build_query_scalar().fetch_optional(pool).await?)
        })?;
        match held {
            Some(_) => Err(StoreError::Forbidden(Forbidden::ChatRequestDeclined)),
            None => Ok(()),
        }
    }

    /// Creates a group owned by `group.owner_id`, with its members, in one transaction, with
    /// the events `events` gives. Every member must exist (`Invalid` on `participants`); those
    /// whose message policy is `requests` are invited instead of added.
    pub async fn create_group(
        &self,
        group: &NewGroup,
        events: impl Fn(&GroupCreated) -> Vec<NewEvent>,
    ) -> StoreResult<GroupCreated> {
        if group.members.len() + 1 > self.group_max_members() {
            return Err(StoreError::Invalid(Invalid::GroupTooLarge(self.group_max_members())));
        }
        self.refuse_declined_pairs(group.owner_id, &group.members, group.created_at)
            .await?;
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let everyone = std::iter::once(group.owner_id).chain(group.members.iter().copied());
            let users = users_by_id!(tx, everyone)?;
            let unknown: Vec<Uuid> = group
                .members
                .iter()
                .filter(|member| !users.iter().any(|user| user.id == **member))
                .copied()
                .collect();
            if !unknown.is_empty() {
                return Err(StoreError::Invalid(Invalid::UnknownUsers(unknown)));
            }
            // Those whose policy asks for consent, and those who block the owner, are invited.
            let blockers = blockers_among!(tx, group.owner_id, group.members.iter().copied())?;
            let (invitees, participants): (Vec<User>, Vec<User>) = users.into_iter().partition(|user| {
                user.id != group.owner_id
                    && (MessagePolicy::from_stored(&user.message_policy) == MessagePolicy::Requests
                        || blockers.contains(&user.id))
            });
            sqlx::query(
                "INSERT INTO conversations (id, kind, name, owner_id, created_at, updated_at)
                 VALUES ($1, 'group', $2, $3, $4, $4)",
            )
            .bind(group.id)
            .bind(&group.name)
            .bind(group.owner_id)
            .bind(group.created_at)
            .execute(&mut *tx)
            .await?;
            for user in &participants {
                let role = if user.id == group.owner_id { "owner" } else { "member" };
                sqlx::query(
                    "INSERT INTO participants (conversation_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(group.id)
                .bind(user.id)
                .bind(role)
                .bind(group.created_at)
                .execute(&mut *tx)
                .await?;
            }
            let owner = participants
                .iter()
                .find(|user| user.id == group.owner_id)
                .cloned()
                .ok_or(StoreError::NotFound("user"))?;
            let mut invited = Vec::with_capacity(invitees.len());
            let since = self.declines_since(group.created_at);
            for invitee in &invitees {
                let hidden = invite_to_group!(tx, group.id, group.owner_id, invitee, group.created_at, since)?;
                invited.push(ChatRequest::invitation(
                    group.id,
                    Some(group.name.clone()),
                    &owner,
                    invitee,
                    group.created_at,
                    hidden.unwrap_or(false),
                ));
            }
            let conversation = new_conversation(
                group.id,
                ConversationKind::Group,
                Some(group.name.clone()),
                Some(group.owner_id),
                participants,
                group.created_at,
            );
            let created = GroupCreated { conversation, invited };
            commit_with_events!(self, tx, events(&created), group.created_at)?;
            Ok(created)
        })
    }

    /// The member's conversation, as they see it.
    pub async fn conversation(&self, member: &Member) -> StoreResult<Conversation> {
        let row = with_backend!(self, |pool| {
            Ok(
                sqlx::query_as::<_, ConversationRow>(select_conversations!("AND c.id = $2", ""))
                    .bind(member.user())
                    .bind(member.conversation())
                    .fetch_optional(pool)
                    .await?,
            )
        })?;
        let row = row.ok_or(StoreError::NotFound("conversation"))?;
        self.with_participants(member.user(), vec![row])
            .await?
            .pop()
            .ok_or(StoreError::NotFound("conversation"))
    }

    /// The caller's conversations, archived or not: pinned first, then most recent activity
    /// first; `limit` of them after `cursor`.
    pub async fn list_conversations(
        &self,
        caller: Uuid,
        archived: bool,
        limit: u32,
        cursor: Option<ConversationCursor>,
    ) -> StoreResult<Vec<Conversation>> {
        let rows = with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, ConversationRow>(select_conversations!(
                "AND (p.archived_at IS NOT NULL) = $2
                 AND NOT (COALESCE(c.request_status, '') IN ('pending', 'declined') AND c.requester_id <> $1)
                 AND (p.hidden_at_seq IS NULL OR c.last_seq > p.hidden_at_seq)
                 AND ($3 IS NULL
                      OR (CASE WHEN p.pinned_at IS NULL THEN 0 ELSE 1 END, c.updated_at, c.id) < ($5, $3, $4))",
                "ORDER BY CASE WHEN p.pinned_at IS NULL THEN 0 ELSE 1 END DESC, c.updated_at DESC, c.id DESC
                 LIMIT $6"
            ))
            .bind(caller)
            .bind(archived)
            .bind(cursor.map(|cursor| cursor.updated_at))
            .bind(cursor.map(|cursor| cursor.id))
            .bind(cursor.map_or(0, |cursor| i32::from(cursor.pinned)))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })?;
        self.with_participants(caller, rows).await
    }

    /// The caller's conversations whose name contains `name` (case-insensitive): groups by
    /// their name, direct conversations by the other participant's name. Most recent first.
    pub async fn search_conversations(&self, caller: Uuid, name: &str, limit: u32) -> StoreResult<Vec<Conversation>> {
        let pattern = format!("%{}%", super::users::escape_like(&name.to_lowercase()));
        let rows = with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, ConversationRow>(select_conversations!(
                "AND NOT (COALESCE(c.request_status, '') IN ('pending', 'declined') AND c.requester_id <> $1)
                 AND (lower(c.name) LIKE $2 ESCAPE '\\'
                      OR (c.kind = 'direct' AND EXISTS (
                          SELECT 1 FROM participants other JOIN users ou ON ou.id = other.user_id
                          WHERE other.conversation_id = c.id AND other.user_id <> $1
                            AND ou.search_name LIKE $2 ESCAPE '\\')))",
                "ORDER BY c.updated_at DESC, c.id DESC LIMIT $3"
            ))
            .bind(caller)
            .bind(&pattern)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?)
        })?;
        self.with_participants(caller, rows).await
    }

    /// The distinct users of `conversations` that `caller` is in (the caller included);
    /// conversations the caller is not in are ignored.
    pub async fn participants_of(&self, caller: Uuid, conversations: &[Uuid]) -> StoreResult<Vec<User>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT DISTINCT ",
                user_columns!(u),
                " FROM participants mine
                 JOIN participants other ON other.conversation_id = mine.conversation_id
                 JOIN users u ON u.id = other.user_id
                 WHERE mine.user_id = "
            ));
            builder.push_bind(caller);
            builder.push(" AND mine.conversation_id IN ");
            push_ids(&mut builder, conversations.iter().copied());
            builder.push(" ORDER BY u.name, u.id");
            Ok(builder.build_query_as::<User>().fetch_all(pool).await?)
        })
    }

    /// Toggles one of the member's flags on their conversation and appends the events
    /// `events` gives for the conversation as they now see it.
    pub async fn toggle_conversation_flag(
        &self,
        member: &Member,
        flag: ConversationFlag,
        now: DateTime<Utc>,
        events: impl Fn(&Conversation) -> Vec<NewEvent>,
    ) -> StoreResult<Conversation> {
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let sql = match flag {
                ConversationFlag::Pinned => {
                    "UPDATE participants SET pinned_at = CASE WHEN pinned_at IS NULL THEN $3 ELSE NULL END
                     WHERE conversation_id = $1 AND user_id = $2"
                }
                ConversationFlag::Archived => {
                    "UPDATE participants SET archived_at = CASE WHEN archived_at IS NULL THEN $3 ELSE NULL END
                     WHERE conversation_id = $1 AND user_id = $2"
                }
                // Both assignments read the row as it was: a mute in force ends, otherwise
                // one begins (a lapsed mute counts as none).
                ConversationFlag::Muted { .. } => {
                    "UPDATE participants SET
                       muted_at = CASE WHEN muted_at IS NULL OR muted_until <= $3 THEN $3 ELSE NULL END,
                       muted_until = CASE WHEN muted_at IS NULL OR muted_until <= $3 THEN $4 ELSE NULL END
                     WHERE conversation_id = $1 AND user_id = $2"
                }
            };
            let mut query = sqlx::query(sql)
                .bind(member.conversation())
                .bind(member.user())
                .bind(now);
            if let ConversationFlag::Muted { until } = flag {
                query = query.bind(until);
            }
            let updated = query.execute(&mut *tx).await?;
            if updated.rows_affected() == 0 {
                // Left in between: the gate's answer no longer holds.
                return Err(StoreError::NotFound("conversation"));
            }
            let conversation = conversation_in_tx!(tx, member.user(), member.conversation())?;
            commit_with_events!(self, tx, events(&conversation), now)?;
            Ok(conversation)
        })
    }

    /// Moves the member's read position forward to message `up_to` (or to the last message),
    /// never back, with the events `events` gives for the new position (only when it moved).
    /// Returns the id of the message now read up to (`None`: no messages), or `Invalid` for an
    /// `up_to` of another conversation.
    pub async fn mark_read(
        &self,
        member: &Member,
        up_to: Option<Uuid>,
        now: DateTime<Utc>,
        events: impl Fn(Option<Uuid>) -> Vec<NewEvent>,
    ) -> StoreResult<Option<Uuid>> {
        member.require_can_act()?;
        let (conversation, reader) = (member.conversation(), member.user());
        let target: Option<i64> = match up_to {
            None => None,
            Some(message) => Some(
                self.message_seq(conversation, message, MessageReference::ReadUpTo)
                    .await?,
            ),
        };
        with_writer!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            // A read: it comes before the lock, which the first write takes.
            let before: Option<i64> = sqlx::query_scalar(
                "SELECT last_read_seq FROM participants WHERE conversation_id = $1 AND user_id = $2",
            )
            .bind(conversation)
            .bind(reader)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(before) = before else {
                return Err(StoreError::NotFound("conversation"));
            };
            let sql = sqlx::AssertSqlSafe(format!(
                "UPDATE participants
                 SET last_read_seq = {greatest}(last_read_seq, COALESCE($3, (SELECT last_seq FROM conversations WHERE id = $1)))
                 WHERE conversation_id = $1 AND user_id = $2 AND {lock}
                 RETURNING last_read_seq",
                greatest = pool.greatest(),
                lock = pool.lock_conversation()
            ));
            // No row: the reader left since the gate answered.
            let after: i64 = sqlx::query_scalar(sql)
                .bind(conversation)
                .bind(reader)
                .bind(target)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("conversation"))?;
            // The last message the reader may see at or before their position: never one hidden
            // from them (withheld by a block, or deleted for themselves).
            let read_up_to: Option<Uuid> = sqlx::query_scalar(
                "SELECT m.id FROM messages m WHERE m.conversation_id = $1 AND m.seq <= $2
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $3 AND h.message_id = m.id)
                 ORDER BY m.seq DESC LIMIT 1",
            )
            .bind(conversation)
            .bind(after)
            .bind(reader)
            .fetch_optional(&mut *tx)
            .await?;
            if after > before {
                let mut events = events(read_up_to);
                // No receipts across a block: the reader's own devices still learn of it.
                if let Some(partner) = withheld_partner!(tx, conversation, reader, WITHHELD_RECEIPT)? {
                    events = withheld_from(events, partner, reader);
                }
                commit_with_events!(self, tx, events, now)?;
            } else {
                tx.commit().await?;
            }
            Ok(read_up_to)
        })
    }

    /// The sum of `user`'s unread counts over all their conversations, leaving out the chat
    /// requests they received and have not accepted (`pending_requests` counts those).
    pub async fn total_unread(&self, user: Uuid) -> StoreResult<i64> {
        with_backend!(self, |pool| {
            Ok(sqlx::query_scalar::<_, i64>(concat!(
                "SELECT CAST(COALESCE(SUM(",
                unread_count!(),
                "), 0) AS BIGINT)
                 FROM participants p JOIN conversations c ON c.id = p.conversation_id
                 WHERE p.user_id = $1
                   AND NOT (COALESCE(c.request_status, '') IN ('pending', 'declined') AND c.requester_id <> $1)"
            ))
            .bind(user)
            .fetch_one(pool)
            .await?)
        })
    }

    /// Each participant's read position in the member's conversation: (user, `seq` of the last
    /// message read).
    pub async fn read_positions(&self, member: &Member) -> StoreResult<Vec<(Uuid, i64)>> {
        let conversation = member.conversation();
        with_backend!(self, |pool| {
            Ok(sqlx::query_as::<_, (Uuid, i64)>(concat!(
                "SELECT user_id, ",
                read_position_seen_by!("$2"),
                " FROM participants p WHERE conversation_id = $1"
            ))
            .bind(conversation)
            .bind(member.user())
            .fetch_all(pool)
            .await?)
        })
    }

    /// Loads the participants of all `rows` with one query and assembles the conversations, as
    /// `viewer` sees them (no read positions across a block).
    async fn with_participants(&self, viewer: Uuid, rows: Vec<ConversationRow>) -> StoreResult<Vec<Conversation>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let participants: Vec<ParticipantRow> = with_backend!(self, |pool| {
            let mut builder = sqlx::QueryBuilder::new(
                "SELECT p.conversation_id, CASE WHEN EXISTS (SELECT 1 FROM user_blocks ub
                     WHERE (ub.blocker_id = p.user_id AND ub.blocked_id = ",
            );
            builder.push_bind(viewer);
            builder.push(") OR (ub.blocked_id = p.user_id AND ub.blocker_id = ");
            builder.push_bind(viewer);
            builder.push(concat!(
                ")) THEN 0 ELSE p.last_read_seq END AS last_read_seq, ",
                user_columns!(u),
                " FROM participants p JOIN users u ON u.id = p.user_id
                 WHERE p.conversation_id IN "
            ));
            push_ids(&mut builder, rows.iter().map(|row| row.id));
            builder.push(" ORDER BY p.joined_at, u.id");
            Ok(builder.build_query_as().fetch_all(pool).await?)
        })?;
        let mut conversations = assemble(rows, participants);
        // Each conversation's latest message with its files, in one query.
        let mut latest: Vec<Message> = conversations
            .iter_mut()
            .filter_map(|conversation| conversation.last_message.take())
            .collect();
        with_backend!(self, |pool| attach_files!(pool, &mut latest))?;
        for conversation in &mut conversations {
            if let Some(at) = latest
                .iter()
                .position(|message| message.conversation_id == conversation.id)
            {
                conversation.last_message = Some(latest.swap_remove(at));
            }
        }
        Ok(conversations)
    }
}
