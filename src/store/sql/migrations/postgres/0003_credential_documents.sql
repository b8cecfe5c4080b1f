-- twofactor schema version 3: one row per user, holding the application's identity
-- of the user (id, login, email, role) and the crate's credential document (opaque
-- JSON, versioned for compare-and-swap; version 0 and no document: the crate holds
-- nothing for the user yet). The schema-2 accounts are converted into it by the
-- store in the same transaction, then their tables are dropped.
CREATE TABLE IF NOT EXISTS twofactor_users (
    id       TEXT   NOT NULL PRIMARY KEY,
    login    TEXT   NOT NULL UNIQUE,
    email    TEXT   NOT NULL,
    role     TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    document TEXT,
    CHECK ((version = 0) = (document IS NULL))
);
