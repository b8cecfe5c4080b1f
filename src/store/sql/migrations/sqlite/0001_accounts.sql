-- twofactor schema version 1 (SQLite). Every integer is a 64-bit two's-complement
-- bit cast of the record's u64 value; times are seconds since the Unix epoch.
-- pending_marks packs the marks of failed or used pending logins, 29 bytes each:
-- id (16 bytes), expires_at (u64, big-endian), failures (u32, big-endian), consumed (0/1).
CREATE TABLE IF NOT EXISTS twofactor_accounts (
    id                   BIGINT  NOT NULL PRIMARY KEY,
    username             TEXT    NOT NULL UNIQUE,
    email                TEXT    NOT NULL,
    role                 TEXT    NOT NULL,
    password_hash        TEXT    NOT NULL,
    security_stamp       BIGINT  NOT NULL,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    tf_state             TEXT    NOT NULL,
    totp_secret          BLOB,
    totp_algorithm       TEXT,
    totp_digits          BIGINT,
    totp_period          BIGINT,
    totp_last_used_step  BIGINT,
    tf_started_at        BIGINT,
    tf_enabled_at        BIGINT,
    throttle_failures    BIGINT  NOT NULL,
    throttle_until       BIGINT,
    second_factor_locked BOOLEAN NOT NULL,
    reset_by             BIGINT,
    reset_by_username    TEXT,
    reset_by_role        TEXT,
    reset_identity_check TEXT,
    reset_at             BIGINT,
    pending_marks        BLOB    NOT NULL
);

CREATE TABLE IF NOT EXISTS twofactor_backup_codes (
    account_id BIGINT NOT NULL REFERENCES twofactor_accounts (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    phc        TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (account_id, seq)
);

CREATE TABLE IF NOT EXISTS twofactor_locations (
    account_id   BIGINT NOT NULL REFERENCES twofactor_accounts (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    id           BLOB   NOT NULL,
    token_hash   BLOB   NOT NULL,
    label        TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
