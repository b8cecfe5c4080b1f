-- twofactor schema version 4: when the earliest mail queued in the user's document
-- is due (Unix seconds; NULL: no mail waits), written with the document in the same
-- statement, so the delivery worker finds the users with mail due through the index
-- (in due order) instead of reading every document. Existing rows start at NULL:
-- documents written before this version queue no mail.
ALTER TABLE twofactor_users ADD COLUMN mail_due BIGINT;
CREATE INDEX IF NOT EXISTS twofactor_users_mail_due ON twofactor_users (mail_due, id) WHERE mail_due IS NOT NULL;
