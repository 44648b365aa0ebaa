-- Blocking, a chosen presence status, presence by subscription, deleted accounts (issue 11).
-- Twin: migrations/sqlite/0020_blocks_presence_deletion.sql.

-- While a row is here, blocker_id is never reached by blocked_id (and sees nothing of them).
CREATE TABLE user_blocks (
    blocker_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
-- "Is there a block between these two, either way": the other direction's lookup.
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id, blocker_id);

-- A chat request or group invitation made by someone the recipient blocks: it looks pending
-- to its sender and never reaches the recipient, not even after an unblock.
ALTER TABLE conversations ADD COLUMN request_hidden BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE group_invitations ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE;

-- POST /user/me/status: 'auto' follows the user's streams; 'online' and 'offline' are what
-- others see whatever the streams do.
ALTER TABLE users ADD COLUMN presence_status TEXT NOT NULL DEFAULT 'auto'
    CHECK (presence_status IN ('auto', 'online', 'offline'));
-- A deleted account: the row stays so that messages and conversations keep their sender
-- ("Deleted user"), but it has no email, phone, password or profile any more.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;

-- Every open stream, so that any instance can subscribe it to presence (the streamId of its
-- ready event). Goes with its instance (shutdown, or a dead instance swept by a live one).
CREATE TABLE streams (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id UUID NOT NULL REFERENCES instances (id) ON DELETE CASCADE
);
-- POST /user/last-activity/subscribe: stream_id gets presence events of target_id.
CREATE TABLE presence_subscriptions (
    stream_id UUID NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    target_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, target_id)
);
CREATE INDEX presence_subscriptions_by_target ON presence_subscriptions (target_id);

-- A message hidden from a user because its sender was blocked (not deleted by the user for
-- themselves): to them it does not exist, by any route, even after an unblock.
ALTER TABLE hidden_messages ADD COLUMN withheld BOOLEAN NOT NULL DEFAULT FALSE;

-- Deleting an account with its messages walks them by sender.
CREATE INDEX messages_by_sender ON messages (sender_id, conversation_id, seq) WHERE deleted_at IS NULL;

-- The profile photo: an image its user uploaded through the files API (with a thumbnail).
-- Readable by anyone who can see the user; a file that is someone's avatar is not an orphan.
ALTER TABLE users ADD COLUMN avatar_id UUID REFERENCES files (id) ON DELETE SET NULL;
-- "Is this file someone's photo": reads of avatars by others, the orphan sweeper, the foreign key.
CREATE INDEX users_by_avatar ON users (avatar_id) WHERE avatar_id IS NOT NULL;
