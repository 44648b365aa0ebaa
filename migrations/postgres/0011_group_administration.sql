-- Group descriptions, and direct conversations a participant removed from their list: hidden
-- while the conversation's last_seq has not moved past this mark (a new message brings it back).
ALTER TABLE conversations ADD COLUMN description TEXT;
ALTER TABLE participants ADD COLUMN hidden_at_seq BIGINT;
