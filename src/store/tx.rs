//! The store's in-transaction helpers, in one place: each runs inside a `with_writer!` body on
//! either backend's transaction (`$tx`), which is why they are macros (one body compiled per
//! backend) rather than functions generic over sqlx's database traits.
//!
//! Their contract is the one of `with_backend!`: each evaluates to `StoreResult<T>`; `?` and
//! `return` inside leave the helper only. Callers write `helper!(..)?`.

use std::future::Future;

use super::StoreResult;

/// Pins a macro body's type to `StoreResult<T>`: the body is an `async` block, so that `?`
/// and `return` in it leave the body and not the function that uses the macro.
pub(crate) fn store_body<T, F: Future<Output = StoreResult<T>>>(body: F) -> F {
    body
}

/// Appends `$events` (`NewEvent`s) to the log inside `$tx`.
macro_rules! append_events {
    ($tx:ident, $events:expr, $now:expr) => {
        $crate::store::tx::store_body(async {
            for event in $events {
                let (conversation_id, user_id) = match event.audience {
                    $crate::store::Audience::Conversation(id) => (Some(id), None),
                    $crate::store::Audience::User(id) => (None, Some(id)),
                };
                let shown = event.shows.map(|shown| shown.id);
                if event.supersedes && shown.is_some() {
                    sqlx::query("DELETE FROM events WHERE message_id = $1 AND kind = $2")
                        .bind(shown)
                        .bind(event.kind)
                        .execute(&mut *$tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO events (kind, conversation_id, user_id, payload, created_at, message_id, quoted_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(event.kind)
                .bind(conversation_id)
                .bind(user_id)
                .bind(&event.payload)
                .bind($now)
                .bind(shown)
                .bind(event.shows.and_then(|shown| shown.quoted))
                .execute(&mut *$tx)
                .await?;
            }
            Ok(())
        })
        .await
    };
}
pub(crate) use append_events;

/// Rewrites, inside `$tx`, every stored event that shows or quotes one of `$messages` (a
/// `&[Message]`, as they are now) with `$rewrite` (a `PayloadRewrite`): an edited or deleted
/// message's old text leaves the log in the transaction that changes it. The work is one
/// indexed lookup and one update per event that showed the text.
macro_rules! rewrite_events_showing {
    ($tx:ident, $messages:expr, $rewrite:expr) => {
        $crate::store::tx::store_body(async {
            let messages: &[$crate::store::Message] = $messages;
            if messages.is_empty() {
                return Ok(());
            }
            let ids = || messages.iter().map(|message| message.id);
            let mut builder = sqlx::QueryBuilder::new("SELECT id, payload FROM events WHERE message_id IN ");
            $crate::store::sql::push_ids(&mut builder, ids());
            builder.push(" OR quoted_id IN ");
            $crate::store::sql::push_ids(&mut builder, ids());
            let stored: Vec<(i64, String)> = builder.build_query_as().fetch_all(&mut *$tx).await?;
            let rewrite: $crate::store::PayloadRewrite = $rewrite;
            for (id, payload) in stored {
                if let Some(payload) = rewrite(&payload, messages) {
                    sqlx::query("UPDATE events SET payload = $1 WHERE id = $2")
                        .bind(payload)
                        .bind(id)
                        .execute(&mut *$tx)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    };
}
pub(crate) use rewrite_events_showing;

/// Appends `$events` to the log inside `$tx`, commits, and rings the in-process bell: the one
/// way a write transaction that produces events ends. (Other PostgreSQL instances hear of the
/// commit through the NOTIFY that a trigger on `events` sends.)
macro_rules! commit_with_events {
    ($store:expr, $tx:ident, $events:expr, $now:expr) => {
        $crate::store::tx::store_body(async {
            $crate::store::tx::append_events!($tx, $events, $now)?;
            $tx.commit().await?;
            $store.commit_bell.notify_one();
            Ok(())
        })
        .await
    };
}
pub(crate) use commit_with_events;

/// Invites `$invitee` (a `&User`) to group `$group` from `$inviter` inside `$tx`, unless they
/// are a member or invited already: a declined invitation is asked again. `Some(hidden)` when
/// an invitation was made (hidden: the invitee blocks the inviter); `Forbidden(chat_request_declined)` if the invitee declined one of the
/// inviter's after `$since` (checked here again, after the group's lock, against a decline
/// that committed since the caller's check).
macro_rules! invite_to_group {
    ($tx:ident, $group:expr, $inviter:expr, $invitee:expr, $now:expr, $since:expr) => {
        $crate::store::tx::store_body(async {
            let invitee: &$crate::store::User = $invitee;
            let held: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM invitation_declines WHERE inviter_id = $1 AND user_id = $2 AND declined_at > $3",
            )
            .bind($inviter)
            .bind(invitee.id)
            .bind($since)
            .fetch_optional(&mut *$tx)
            .await?;
            if held.is_some() {
                return Err($crate::store::StoreError::Forbidden(
                    $crate::store::Forbidden::ChatRequestDeclined,
                ));
            }
            let member: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2")
                    .bind($group)
                    .bind(invitee.id)
                    .fetch_optional(&mut *$tx)
                    .await?;
            if member.is_some() {
                return Ok(None);
            }
            // While the invitee blocks the inviter, the invitation is hidden from them.
            let invited: Option<bool> = sqlx::query_scalar(
                "INSERT INTO group_invitations (conversation_id, user_id, inviter_id, status, created_at, hidden)
                 VALUES ($1, $2, $3, 'pending', $4,
                         EXISTS (SELECT 1 FROM user_blocks WHERE blocker_id = $2 AND blocked_id = $3))
                 ON CONFLICT (conversation_id, user_id) DO UPDATE
                 SET status = 'pending', inviter_id = excluded.inviter_id, created_at = excluded.created_at,
                     answered_at = NULL, hidden = excluded.hidden
                 WHERE group_invitations.status = 'declined'
                 RETURNING hidden",
            )
            .bind($group)
            .bind(invitee.id)
            .bind($inviter)
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?;
            Ok(invited)
        })
        .await
    };
}
pub(crate) use invite_to_group;

/// Those of `$users` who block `$user`, read inside `$tx`: what `$user` asks of them becomes a
/// hidden request or invitation.
macro_rules! blockers_among {
    ($tx:ident, $user:expr, $users:expr) => {
        $crate::store::tx::store_body(async {
            let users: Vec<uuid::Uuid> = $users.into_iter().collect();
            if users.is_empty() {
                return Ok(Vec::new());
            }
            let mut builder = sqlx::QueryBuilder::new("SELECT blocker_id FROM user_blocks WHERE blocked_id = ");
            builder.push_bind($user);
            builder.push(" AND blocker_id IN ");
            $crate::store::sql::push_ids(&mut builder, users);
            let blockers: Vec<uuid::Uuid> = builder.build_query_scalar().fetch_all(&mut *$tx).await?;
            Ok(blockers)
        })
        .await
    };
}
pub(crate) use blockers_among;

/// Members and pending invitations of group `$group` inside `$tx`: what `GROUP_MAX_MEMBERS`
/// bounds, so that invitations cannot pile up past the group's size either.
macro_rules! group_seats_taken {
    ($tx:ident, $group:expr) => {
        $crate::store::tx::store_body(async {
            let taken: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM participants WHERE conversation_id = $1)
                      + (SELECT COUNT(*) FROM group_invitations WHERE conversation_id = $1 AND status = 'pending')",
            )
            .bind($group)
            .fetch_one(&mut *$tx)
            .await?;
            Ok(taken)
        })
        .await
    };
}
pub(crate) use group_seats_taken;

/// Loads the attachments of `$messages` (a `&mut [Message]`) through `$executor` (a pool, or
/// `&mut *tx`), and their links, in two queries; tombstones keep none.
macro_rules! attach_files {
    ($executor:expr, $messages:expr) => {
        $crate::store::tx::store_body(async {
            let messages: &mut [$crate::store::Message] = $messages;
            let ids: Vec<uuid::Uuid> = messages
                .iter()
                .filter(|message| !message.deleted)
                .map(|message| message.id)
                .collect();
            if ids.is_empty() {
                return Ok(());
            }
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT mf.message_id, {} FROM message_files mf JOIN files f ON f.id = mf.file_id WHERE mf.message_id IN ",
                $crate::store::files::FILE_COLUMNS
            ));
            $crate::store::sql::push_ids(&mut builder, ids.iter().copied());
            builder.push(" ORDER BY mf.message_id, mf.position");
            let rows: Vec<$crate::store::files::AttachmentRow> = builder.build_query_as().fetch_all($executor).await?;
            for row in rows {
                if let Some(message) = messages.iter_mut().find(|message| message.id == row.message_id) {
                    message.attachments.push(row.file);
                }
            }
            let mut builder =
                sqlx::QueryBuilder::new("SELECT message_id, kind, url FROM message_links WHERE message_id IN ");
            $crate::store::sql::push_ids(&mut builder, ids);
            builder.push(" ORDER BY message_id, kind");
            let rows: Vec<$crate::store::files::LinkRow> = builder.build_query_as().fetch_all($executor).await?;
            for row in rows {
                if let Some(message) = messages.iter_mut().find(|message| message.id == row.message_id) {
                    message.links.push(row.link);
                }
            }
            Ok(())
        })
        .await
    };
}
pub(crate) use attach_files;

/// Attaches `$new`'s files (a `&NewMessage`'s, just inserted) to it inside `$tx`: each must be
/// one its sender uploaded (`Invalid::UnknownFiles` otherwise). Evaluates to them, in order.
macro_rules! attach_new_files {
    ($tx:ident, $new:expr) => {
        $crate::store::tx::store_body(async {
            let new: &$crate::store::NewMessage = $new;
            if new.files.is_empty() {
                return Ok(Vec::new());
            }
            let mut builder = sqlx::QueryBuilder::new(format!(
                "SELECT {} FROM files f WHERE f.state = 'ready' AND f.owner_id = ",
                $crate::store::files::FILE_COLUMNS
            ));
            builder.push_bind(new.sender_id);
            builder.push(" AND f.id IN ");
            $crate::store::sql::push_ids(&mut builder, new.files.iter().copied());
            let found: Vec<$crate::store::StoredFile> = builder.build_query_as().fetch_all(&mut *$tx).await?;
            let mut attached = Vec::with_capacity(new.files.len());
            let mut unknown = Vec::new();
            for id in &new.files {
                match found.iter().find(|file| file.id == *id) {
                    Some(file) => attached.push(file.clone()),
                    None => unknown.push(*id),
                }
            }
            if !unknown.is_empty() {
                return Err($crate::store::StoreError::Invalid(
                    $crate::store::Invalid::UnknownFiles(unknown),
                ));
            }
            for (position, file) in attached.iter().enumerate() {
                let inserted =
                    sqlx::query("INSERT INTO message_files (message_id, file_id, position) VALUES ($1, $2, $3)")
                        .bind(new.id)
                        .bind(file.id)
                        .bind(i32::try_from(position).unwrap_or(i32::MAX))
                        .execute(&mut *$tx)
                        .await;
                match inserted {
                    Ok(_) => {}
                    // Swept as an orphan between the read above and this insert.
                    Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
                        return Err($crate::store::StoreError::Invalid(
                            $crate::store::Invalid::UnknownFiles(vec![file.id]),
                        ));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(attached)
        })
        .await
    };
}
pub(crate) use attach_new_files;

/// Stores `$new`'s links (a `&NewMessage`'s, just inserted) inside `$tx`; evaluates to them.
macro_rules! insert_links {
    ($tx:ident, $new:expr) => {
        $crate::store::tx::store_body(async {
            let new: &$crate::store::NewMessage = $new;
            for link in &new.links {
                sqlx::query("INSERT INTO message_links (message_id, kind, url) VALUES ($1, $2, $3)")
                    .bind(new.id)
                    .bind(&link.kind)
                    .bind(&link.url)
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok(new.links.clone())
        })
        .await
    };
}
pub(crate) use insert_links;

/// Makes `$user` a member of group `$group` inside `$tx` (whose pool is `$pool`), reading the
/// group's events from now on (the history stays readable through the message routes); an
/// invitation of theirs goes. Whether they were not a member before.
macro_rules! join_group {
    ($tx:ident, $pool:ident, $group:expr, $user:expr, $now:expr) => {
        $crate::store::tx::store_body(async {
            sqlx::query("DELETE FROM group_invitations WHERE conversation_id = $1 AND user_id = $2")
                .bind($group)
                .bind($user)
                .execute(&mut *$tx)
                .await?;
            let sql = sqlx::AssertSqlSafe(format!(
                "INSERT INTO participants (conversation_id, user_id, role, joined_at, joined_tx, joined_id)
                 VALUES ($1, $2, 'member', $3, {join_position})
                 ON CONFLICT DO NOTHING",
                join_position = $pool.join_position()
            ));
            let inserted = sqlx::query(sql)
                .bind($group)
                .bind($user)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
            Ok(inserted.rows_affected() > 0)
        })
        .await
    };
}
pub(crate) use join_group;

/// Loads users by id inside `$tx`, ordered by id, as the participant lists are.
macro_rules! users_by_id {
    ($tx:ident, $ids:expr) => {
        $crate::store::tx::store_body(async {
            let mut builder = sqlx::QueryBuilder::new(concat!(
                "SELECT ",
                $crate::store::sql::user_columns!(),
                " FROM users WHERE deleted_at IS NULL AND id IN "
            ));
            $crate::store::sql::push_ids(&mut builder, $ids);
            builder.push(" ORDER BY id");
            let users: Vec<$crate::store::User> = builder.build_query_as().fetch_all(&mut *$tx).await?;
            Ok(users)
        })
        .await
    };
}
pub(crate) use users_by_id;

/// One conversation as `$viewer` sees it, read inside `$tx`.
macro_rules! conversation_in_tx {
    ($tx:ident, $viewer:expr, $conversation:expr) => {
        $crate::store::tx::store_body(async {
            let row = sqlx::query_as::<_, $crate::store::ConversationRow>(
                $crate::store::conversations::select_conversations!("AND c.id = $2", ""),
            )
            .bind($viewer)
            .bind($conversation)
            .fetch_optional(&mut *$tx)
            .await?
            .ok_or($crate::store::StoreError::NotFound("conversation"))?;
            let participants: Vec<$crate::store::ParticipantRow> =
                sqlx::query_as($crate::store::sql::SELECT_PARTICIPANTS_OF_ONE)
                    .bind($conversation)
                    .fetch_all(&mut *$tx)
                    .await?;
            $crate::store::conversations::assemble(vec![row], participants)
                .pop()
                .ok_or($crate::store::StoreError::NotFound("conversation"))
        })
        .await
    };
}
pub(crate) use conversation_in_tx;

/// Inserts `$new` (a `&NewMessage`) at position `$seq` with reply quote `$quote` inside `$tx`,
/// which holds the conversation's lock and has moved its `last_seq`, and moves the sender's
/// read position to it (sending means having read what came before). Evaluates to the stored
/// message. Shared by sends and the system messages of group changes; a send
/// (`$from_participant` true) is refused with `NotFound` when the sender is no longer a
/// participant, as seen after the lock (defence in depth behind the gate).
macro_rules! insert_message {
    ($tx:ident, $new:expr, $seq:expr, $quote:expr, $from_participant:expr) => {
        $crate::store::tx::store_body(async {
            let new: &$crate::store::NewMessage = $new;
            sqlx::query(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, content, client_id, reply_to, x, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(new.id)
            .bind(new.conversation_id)
            .bind($seq)
            .bind(new.sender_id)
            .bind(&new.content)
            .bind(&new.client_id)
            .bind(new.reply_to)
            .bind(&new.x)
            .bind(new.created_at)
            .execute(&mut *$tx)
            .await?;
            // The name from the same statement; a sender who just left the group has no
            // participant row to update, so it is read on its own.
            let moved: Option<String> = sqlx::query_scalar(
                "UPDATE participants SET last_read_seq = $3 WHERE conversation_id = $1 AND user_id = $2
                 RETURNING (SELECT name FROM users WHERE id = $2)",
            )
            .bind(new.conversation_id)
            .bind(new.sender_id)
            .bind($seq)
            .fetch_optional(&mut *$tx)
            .await?;
            let sender_name: String = match moved {
                Some(name) => name,
                None if $from_participant => return Err($crate::store::StoreError::NotFound("conversation")),
                None => {
                    sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
                        .bind(new.sender_id)
                        .fetch_one(&mut *$tx)
                        .await?
                }
            };
            Ok($crate::store::Message {
                id: new.id,
                conversation_id: new.conversation_id,
                seq: $seq,
                sender: $crate::store::UserRef {
                    id: new.sender_id,
                    name: sender_name,
                },
                content: new.content.clone(),
                client_id: new.client_id.clone(),
                created_at: new.created_at,
                edited_at: None,
                reply_to: $quote,
                x: new.x.clone(),
                deleted: false,
                attachments: Vec::new(),
                links: Vec::new(),
            })
        })
        .await
    };
}
pub(crate) use insert_message;

/// Appends to conversation `$conversation` (whose lock `$tx` holds) the system message from
/// `$actor` telling `$change` (a `MemberChange`) of `$user` (a `&User`); evaluates to the
/// message. In the transaction of the change itself, so that the change and its message land
/// together.
macro_rules! append_system_message {
    ($tx:ident, $conversation:expr, $actor:expr, $change:expr, $user:expr, $now:expr) => {
        $crate::store::tx::store_body(async {
            let (change, user): ($crate::domain::MemberChange, &$crate::store::User) = ($change, $user);
            let new = $crate::store::NewMessage {
                id: uuid::Uuid::now_v7(),
                conversation_id: $conversation,
                sender_id: $actor,
                content: change.text(&user.name),
                client_id: None,
                reply_to: None,
                x: Some(change.x(user.id, &user.name)),
                files: Vec::new(),
                links: Vec::new(),
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
            $crate::store::tx::insert_message!($tx, &new, seq, None, false)
        })
        .await
    };
}
pub(crate) use append_system_message;

/// Takes conversation `$conversation`'s lock in `$tx` as a statement of its own, before any
/// write (see `Dialect::LOCK_CONVERSATION`), for transactions whose first write is not on the
/// conversation row.
macro_rules! lock_conversation {
    ($tx:ident, $pool:ident, $conversation:expr) => {
        $crate::store::tx::store_body(async {
            let lock = sqlx::AssertSqlSafe(format!("SELECT {}", $pool.lock_conversation()));
            sqlx::query(lock).bind($conversation).execute(&mut *$tx).await?;
            Ok(())
        })
        .await
    };
}
pub(crate) use lock_conversation;

/// In direct conversation `$conversation`, the participant other than `$user` if what `$user`
/// does there now is to be withheld from them (see `event_log::withheld_from`): `$condition`
/// is SQL over `o` (that participant's row), `c` (the conversation), `$2` (`$user`) and, in the
/// second form, `$3` (`$message`). `None` in a group, or when nothing is withheld.
macro_rules! withheld_partner {
    ($tx:ident, $conversation:expr, $user:expr, $condition:expr) => {
        $crate::store::tx::withheld_partner!(@query $tx, $condition, $conversation, $user)
    };
    ($tx:ident, $conversation:expr, $user:expr, $message:expr, $condition:expr) => {
        $crate::store::tx::withheld_partner!(@query $tx, $condition, $conversation, $user, $message)
    };
    (@query $tx:ident, $condition:expr, $($bind:expr),+) => {
        $crate::store::tx::store_body(async {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT o.user_id FROM participants o JOIN conversations c ON c.id = o.conversation_id
                 WHERE o.conversation_id = $1 AND o.user_id <> $2 AND c.kind = 'direct' AND ({})",
                $condition
            ));
            let partner: Option<uuid::Uuid> = sqlx::query_scalar(sql)
                $(.bind($bind))+
                .fetch_optional(&mut *$tx)
                .await?;
            Ok(partner)
        })
        .await
    };
}
pub(crate) use withheld_partner;

/// `withheld_partner!` conditions. A send: the partner blocks the sender, or it goes into a
/// chat request hidden from the partner.
pub(crate) const WITHHELD_SEND: &str = "(c.request_hidden AND c.requester_id = $2)
     OR EXISTS (SELECT 1 FROM user_blocks b WHERE b.blocker_id = o.user_id AND b.blocked_id = $2)";
/// A read receipt: a block either way, or a chat request hidden from the partner.
pub(crate) const WITHHELD_RECEIPT: &str =
    concat!("c.request_hidden OR ", super::sql::blocked_between!("o.user_id", "$2"));
/// An edit or delete of message `$3`: the partner never saw it.
pub(crate) const WITHHELD_MESSAGE: &str =
    "EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = o.user_id AND h.message_id = $3)";

/// `NotFound` unless `$user` is still a participant of `$conversation`, read inside `$tx` after
/// the conversation's lock (so, on PostgreSQL, in a snapshot taken after it): the defence in
/// depth behind the authorization gate, for a member removed in between.
macro_rules! require_participant {
    ($tx:ident, $conversation:expr, $user:expr) => {
        $crate::store::tx::store_body(async {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2")
                    .bind($conversation)
                    .bind($user)
                    .fetch_optional(&mut *$tx)
                    .await?;
            found
                .map(|_| ())
                .ok_or($crate::store::StoreError::NotFound("conversation"))
        })
        .await
    };
}
pub(crate) use require_participant;
