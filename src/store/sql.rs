//! SQL fragments that several queries share, written once. Macros rather than `const`s where
//! the fragment is part of a query built with `concat!` at compile time.

/// The columns of a [`User`](super::User), bare (`user_columns!()`) or of a table alias
/// (`user_columns!(u)`).
macro_rules! user_columns {
    () => {
        "id, name, email, message_policy, about, phone, presence_status, deleted_at, avatar_id, created_at, updated_at"
    };
    ($alias:ident) => {
        concat!(
            stringify!($alias),
            ".id, ",
            stringify!($alias),
            ".name, ",
            stringify!($alias),
            ".email, ",
            stringify!($alias),
            ".message_policy, ",
            stringify!($alias),
            ".about, ",
            stringify!($alias),
            ".phone, ",
            stringify!($alias),
            ".presence_status, ",
            stringify!($alias),
            ".deleted_at, ",
            stringify!($alias),
            ".avatar_id, ",
            stringify!($alias),
            ".created_at, ",
            stringify!($alias),
            ".updated_at"
        )
    };
}
pub(crate) use user_columns;

/// The content type of the first file of replied-to message `r`, else the kind of its first
/// URL (`image_url`, `link`); none once it is deleted for everyone. So that a quote can say
/// "Photo".
macro_rules! reply_attachment_type {
    () => {
        "COALESCE(
           (SELECT f.content_type FROM message_files mf JOIN files f ON f.id = mf.file_id
            WHERE mf.message_id = r.id AND r.deleted_at IS NULL ORDER BY mf.position LIMIT 1),
           (SELECT ml.kind FROM message_links ml
            WHERE ml.message_id = r.id AND r.deleted_at IS NULL ORDER BY ml.kind LIMIT 1)
         ) AS reply_attachment_type"
    };
}
pub(crate) use reply_attachment_type;

/// The unread count of participant row `p` in conversation `c`: the messages after the read
/// position, less those deleted for everyone and those the participant hid. The one place it
/// is computed. Never negative: both subtracted sets are disjoint subsets of the messages
/// after the read position.
macro_rules! unread_count {
    () => {
        "(c.last_seq - p.last_read_seq
          - (SELECT COUNT(*) FROM messages d
             WHERE d.conversation_id = c.id AND d.deleted_at IS NOT NULL AND d.seq > p.last_read_seq)
          - (SELECT COUNT(*) FROM hidden_messages h JOIN messages hm ON hm.id = h.message_id
             WHERE h.user_id = p.user_id AND h.conversation_id = c.id AND h.seq > p.last_read_seq
               AND hm.deleted_at IS NULL))"
    };
}
pub(crate) use unread_count;

/// A conversation `c` in which its participants talk: not a chat request still pending or
/// declined. Presence and profiles are shared only through these.
pub(crate) const ACTIVE_CONVERSATION: &str = "(c.request_status IS NULL OR c.request_status = 'accepted')";

/// Whether either of two users (SQL expressions) blocks the other: then neither sees the
/// other's presence, profile changes, typing or receipts, nor finds them in searches.
macro_rules! blocked_between {
    ($one:literal, $other:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM user_blocks ub WHERE (ub.blocker_id = ",
            $one,
            " AND ub.blocked_id = ",
            $other,
            ") OR (ub.blocker_id = ",
            $other,
            " AND ub.blocked_id = ",
            $one,
            "))"
        )
    };
}
pub(crate) use blocked_between;

/// Participant row `p`'s read position as user `$viewer` may see it: none (0) across a block,
/// so that read receipts do not cross one.
macro_rules! read_position_seen_by {
    ($viewer:literal) => {
        concat!(
            "CASE WHEN ",
            $crate::store::sql::blocked_between!("p.user_id", $viewer),
            " THEN 0 ELSE p.last_read_seq END AS last_read_seq"
        )
    };
}
pub(crate) use read_position_seen_by;

/// Everyone who shares an active conversation with user `$1` (not `$1`) and has no block
/// with them: who sees their profile changes. A pending or declined chat request shares none.
pub(crate) const CONTACTS_OF: &str = concat!(
    "SELECT DISTINCT other.user_id FROM participants mine
     JOIN conversations c ON c.id = mine.conversation_id
     JOIN participants other ON other.conversation_id = mine.conversation_id
     WHERE mine.user_id = $1 AND other.user_id <> $1
       AND (c.request_status IS NULL OR c.request_status = 'accepted')
       AND NOT ",
    blocked_between!("other.user_id", "$1")
);

/// The participants of conversation `$1` with their read positions, in joining order.
pub(crate) const SELECT_PARTICIPANTS_OF_ONE: &str = concat!(
    "SELECT p.conversation_id, p.last_read_seq, ",
    user_columns!(u),
    " FROM participants p JOIN users u ON u.id = p.user_id
     WHERE p.conversation_id = $1 ORDER BY p.joined_at, u.id"
);

/// The key that makes a pair's direct conversation unique, whoever started it.
pub(crate) fn direct_key(one: uuid::Uuid, other: uuid::Uuid) -> String {
    let (low, high) = if one < other { (one, other) } else { (other, one) };
    format!("{low}:{high}")
}

/// Appends `(id, id, ...)` to a query being built, each id a bound parameter: the list of an
/// `IN`. Callers bound the number of ids (every list a request accepts has a maximum).
pub(crate) fn push_ids<DB>(builder: &mut sqlx::QueryBuilder<DB>, ids: impl IntoIterator<Item = uuid::Uuid>)
where
    DB: sqlx::Database,
    uuid::Uuid: for<'value> sqlx::Encode<'value, DB> + sqlx::Type<DB>,
{
    builder.push("(");
    let mut list = builder.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    builder.push(")");
}
