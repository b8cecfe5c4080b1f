-- twofactor schema version 2: second-factor failures count apart from wrong passwords
-- (only they lock the second factor), and the newest TOTP step accepted before a
-- reset outlives it (no code replays across a reset). Existing rows start at 0.
ALTER TABLE twofactor_accounts ADD COLUMN second_factor_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE twofactor_accounts ADD COLUMN retired_totp_step BIGINT NOT NULL DEFAULT 0;
