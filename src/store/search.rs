//! Message search: the planner that picks, per query, between reading the full-text index
//! and testing the caller's newest messages one by one (see [`Store::search_messages`]).

use uuid::Uuid;

use super::{Dialect, Member, Message, MessageReference, Store, StoreResult, with_backend};

/// `$query` for a search of `$scope`, with the parameters both search plans share bound as
/// `$1` to `$5`: caller, words, conversation (or NULL), cursor id, cursor position.
///
/// Not prepared once and reused (`persistent(false)`): PostgreSQL then plans each search for
/// its own words, where a plan cached for "any words" read the full-text index once per
/// conversation (1.2 s instead of 4 ms, measured).
macro_rules! searching {
    ($query:expr, $pool:ident, $scope:expr) => {
        $query
            .persistent(false)
            .bind($scope.caller)
            .bind($pool.text_query($scope.words))
            .bind($scope.conversation)
            .bind($scope.before_id)
            .bind($scope.before_seq)
    };
}

impl Store {
    /// The caller's messages matching `words`, newest first: in every conversation of the
    /// caller, ordered by id, or in the conversation of `within` (the caller's membership),
    /// ordered by position as the message list is. `before` is the last message of the previous page.
    /// Deleted messages and messages hidden for the caller are never found.
    ///
    /// Neither index answers "the newest matches" alone, so there are two plans. A word with
    /// few matches (at most `COMMON_WORD_MATCHES` in the caller's conversations, per backend)
    /// is read through the full-text index and its matches sorted. A common word is looked for
    /// in the caller's newest messages first, testing each until a page is found, within a
    /// window of `NEWEST_FIRST_WINDOW` messages; what the window lacks comes from sorting the
    /// older matches. The first query tells which case this is.
    pub async fn search_messages(
        &self,
        caller: Uuid,
        within: Option<&Member>,
        words: &str,
        limit: u32,
        before: Option<Uuid>,
    ) -> StoreResult<Vec<Message>> {
        let conversation = within.map(Member::conversation);
        let before_seq = match (conversation, before) {
            (Some(conversation), Some(before)) => {
                Some(self.message_seq(conversation, before, MessageReference::Before).await?)
            }
            _ => None,
        };
        // Unbounded cursors as the largest values keep the conditions usable by the indexes.
        let scope = SearchScope {
            caller,
            conversation,
            words,
            before_id: before.filter(|_| conversation.is_none()).unwrap_or(Uuid::max()),
            before_seq: before_seq.unwrap_or(i64::MAX),
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let (mut ids, common) = self.sorted_matches(&scope, self.common_word_matches, limit).await?;
        if common {
            let window = self.newest_first_window(&scope).await?;
            ids = self.newest_matches(&scope, window, limit).await?;
            if ids.len() < limit
                && let Some(oldest) = window
            {
                let older = scope.below(oldest);
                ids.extend(self.sorted_matches(&older, i64::MAX, limit - ids.len()).await?.0);
            }
        }
        self.messages_in_order(&ids).await
    }

    /// The newest `limit` matches of `scope`, read through the full-text index, and whether
    /// there are `cap` matches or more (then only the count is sure, not the order: the
    /// caller switches plans).
    async fn sorted_matches(&self, scope: &SearchScope<'_>, cap: i64, limit: usize) -> StoreResult<(Vec<Uuid>, bool)> {
        let found: Vec<(Uuid, i64)> = with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "WITH found AS MATERIALIZED (
                     SELECT m.id, m.seq FROM {matching}
                     JOIN participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                     WHERE m.deleted_at IS NULL
                       AND ($3 IS NULL OR m.conversation_id = $3) AND m.id < $4 AND m.seq < $5
                       AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = m.id)
                     LIMIT $6
                 )
                 SELECT id, (SELECT COUNT(*) FROM found) FROM found ORDER BY {key} DESC LIMIT $7",
                matching = pool.matching_messages(),
                key = scope.order_key(),
            ));
            Ok(searching!(sqlx::query_as(sql), pool, scope)
                .bind(cap)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?)
        })?;
        let common = found.first().is_some_and(|(_, count)| *count >= cap);
        Ok((found.into_iter().map(|(id, _)| id).collect(), common))
    }

    /// The oldest message (id, seq) of the `NEWEST_FIRST_WINDOW` newest of `scope`, or `None`
    /// when the scope holds fewer.
    async fn newest_first_window(&self, scope: &SearchScope<'_>) -> StoreResult<Option<(Uuid, i64)>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT m.id, m.seq FROM messages m
                 {join} participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                 WHERE {in_scope} AND m.id < $3 AND m.seq < $4
                 ORDER BY m.{key} DESC LIMIT 1 OFFSET $5",
                join = pool.join_in_order(),
                in_scope = scope.conversation_condition("$2"),
                key = scope.order_key(),
            ));
            Ok(sqlx::query_as::<_, (Uuid, i64)>(sql)
                .bind(scope.caller)
                .bind(scope.conversation)
                .bind(scope.before_id)
                .bind(scope.before_seq)
                .bind(self.newest_first_window - 1)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// The newest `limit` matches of `scope` down to `oldest` (included; `None`: all), found
    /// by testing the scope's messages newest first.
    async fn newest_matches(
        &self,
        scope: &SearchScope<'_>,
        oldest: Option<(Uuid, i64)>,
        limit: usize,
    ) -> StoreResult<Vec<Uuid>> {
        with_backend!(self, |pool| {
            let sql = sqlx::AssertSqlSafe(format!(
                "SELECT m.id FROM messages m
                 {join} participants p ON p.conversation_id = m.conversation_id AND p.user_id = $1
                 WHERE {in_scope} AND m.id < $4 AND m.seq < $5 AND m.{key} >= {oldest}
                   AND {matches} AND m.deleted_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = $1 AND h.message_id = m.id)
                 ORDER BY m.{key} DESC LIMIT $8",
                join = pool.join_in_order(),
                in_scope = scope.conversation_condition("$3"),
                key = scope.order_key(),
                oldest = if scope.conversation.is_some() { "$7" } else { "$6" },
                matches = pool.text_match_each(),
            ));
            // The window's oldest message, or the smallest values when the window holds all.
            let (oldest_id, oldest_seq) = oldest.unwrap_or((Uuid::nil(), i64::MIN));
            Ok(searching!(sqlx::query_scalar(sql), pool, scope)
                .bind(oldest_id)
                .bind(oldest_seq)
                .bind(limit as i64)
                .fetch_all(pool)
                .await?)
        })
    }
}

/// What a message search looks in: the caller's conversations, or one of them, below a cursor
/// (an id across conversations, a position within one).
struct SearchScope<'a> {
    caller: Uuid,
    conversation: Option<Uuid>,
    words: &'a str,
    before_id: Uuid,
    before_seq: i64,
}

impl SearchScope<'_> {
    /// Newest first is by id across conversations, by position within one.
    fn order_key(&self) -> &'static str {
        if self.conversation.is_some() { "seq" } else { "id" }
    }

    /// "In the scope's conversation", with the conversation bound as `param`: an equality the
    /// conversation's index can use, or (across conversations, `param` bound to NULL) true.
    fn conversation_condition(&self, param: &str) -> String {
        if self.conversation.is_some() {
            format!("m.conversation_id = {param}")
        } else {
            format!("{param} IS NULL")
        }
    }

    /// The same scope, below message `oldest` (id, seq).
    fn below(&self, oldest: (Uuid, i64)) -> Self {
        let (id, seq) = oldest;
        Self {
            before_id: if self.conversation.is_some() {
                self.before_id
            } else {
                id
            },
            before_seq: if self.conversation.is_some() {
                seq
            } else {
                self.before_seq
            },
            ..*self
        }
    }
}
