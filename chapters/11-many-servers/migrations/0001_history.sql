-- Chapter 10: what clients said, kept so that a client who joins a room hears what it missed.
-- Applied at start-up by `sqlx::migrate!` (see src/storage.rs); never edit an applied migration,
-- add the next one instead.

-- One row per message said: in a room (`chat`, `action`) or to one client (`private`).
CREATE TABLE messages (
    -- The broker's number for it: increasing in the order the broker handled the messages, and
    -- continued after a restart from the highest one stored.
    seq INTEGER PRIMARY KEY,
    -- Whose history it is: `room:NAME`, or `private:A B` for the two parties' names in lower
    -- case, sorted. Retention (`--history-keep`) counts per scope.
    scope TEXT NOT NULL,
    -- When it was said, in milliseconds since 1970 (UTC).
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('chat', 'action', 'private')),
    sender TEXT NOT NULL,
    -- The recipient of a private message; NULL otherwise.
    recipient TEXT,
    -- The room of a chat message or an action; NULL for a private message.
    room TEXT,
    text TEXT NOT NULL
);

-- The last N of one scope, newest first: what a join, `/history` and retention ask for.
CREATE INDEX messages_by_scope ON messages (scope, seq);

-- One row, written at start-up: the first write takes the file's lock, which the server keeps
-- (SQLite's exclusive locking mode), so that a second server on the same file stops at start-up
-- instead of mixing its messages' numbers with ours.
CREATE TABLE server_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    taken_at INTEGER NOT NULL
);
