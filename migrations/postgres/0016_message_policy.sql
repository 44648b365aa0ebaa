-- Whether a direct conversation to a user needs their consent (issue 9). Twin:
-- migrations/sqlite/0016_message_policy.sql.
--
-- `everyone`: anyone may open a chat and add them to groups; `requests`: POST /conversation
-- opens a chat request and a group addition an invitation.
ALTER TABLE users ADD COLUMN message_policy TEXT NOT NULL DEFAULT 'everyone'
    CHECK (message_policy IN ('everyone', 'requests'));

-- A group invitation: the user is not a participant until they accept (the row then goes and
-- a participant row takes its place). Only a pending one can be accepted; a declined one stays
-- listed (`status=rejected`) until the group goes or the owner removes the user.
CREATE TABLE group_invitations (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inviter_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'declined')),
    created_at      TIMESTAMPTZ NOT NULL,
    answered_at     TIMESTAMPTZ,
    PRIMARY KEY (conversation_id, user_id)
);
-- An invitee's list and pending total.
CREATE INDEX group_invitations_invitee ON group_invitations (user_id, status, created_at);
-- An inviter's outgoing list.
CREATE INDEX group_invitations_inviter ON group_invitations (inviter_id, status, user_id);

-- A declined invitation holds the pair (inviter, user) for CHAT_REQUEST_COOLDOWN_DAYS from
-- `declined_at`, like a declined chat request. Kept apart from the invitation, so that neither
-- deleting the group (its last member leaving) nor a new invitation by someone else lifts it.
CREATE TABLE invitation_declines (
    inviter_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    declined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (inviter_id, user_id)
);
