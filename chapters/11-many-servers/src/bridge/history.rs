//! The bridge's history: a Redis Stream per room (and per private conversation), capped at
//! `--history-keep` entries, in place of chapter 10's SQLite table. Every server writes what its
//! clients say to the stream of its scope, and reads a room's last messages from its stream: so
//! a client gets the same history whichever server it joins.

use redis::Value;

use super::Bridge;
use crate::{
    broker::Event,
    message::ChatMessage,
    storage::{self, Job, Read, Record},
};

/// What a client reads when the shared history cannot be read.
pub const UNAVAILABLE: &str =
    "history is unavailable right now (the server cannot use Redis); chat goes on";

impl Bridge {
    // ANCHOR: history
    /// History jobs: a write goes to its scope's stream, a read comes from its room's. Writes
    /// and reads come through one queue, in the broker's order, so a read sees every write the
    /// broker made before it (the seam of chapter 10, for this instance's messages): the writes
    /// in a row go as one pipeline, and a read after them.
    pub(super) async fn jobs(&mut self, batch: impl Iterator<Item = Job>) {
        let mut writes = Vec::new();
        for job in batch {
            match job {
                Job::Write(record) => writes.push(record),
                Job::Read(read) => {
                    self.write(&writes).await;
                    writes.clear();
                    self.answer(read).await;
                }
            }
        }
        self.write(&writes).await;
    }

    async fn answer(&mut self, read: Read) {
        let answer = self.read(&read).await;
        let event = Event::History {
            to: read.to,
            ticket: read.ticket,
            answer,
        };
        if let Some(events) = self.events.upgrade() {
            let _ = events.send(event).await;
        }
    }

    /// Appends `records` to their streams, in order, as one pipeline.
    async fn write(&mut self, records: &[Record]) {
        let mut pipeline = redis::pipe();
        for record in records {
            if let (Some(scope), Ok(json)) = (
                storage::scope(&record.message.body),
                serde_json::to_string(&record.message),
            ) {
                // `~`: Redis trims whole blocks when it is cheap, so a stream holds about `keep`.
                pipeline
                    .cmd("XADD")
                    .arg(stream_key(&scope))
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.keep)
                    .arg("*")
                    .arg("m")
                    .arg(json)
                    .ignore();
            } else {
                self.history_counts.failures.inc();
            }
        }
        if pipeline.is_empty() {
            return;
        }
        let count = if self.send(&pipeline).await {
            &self.history_counts.writes
        } else {
            &self.history_counts.failures
        };
        for _ in 0..pipeline.len() {
            count.inc();
        }
    }

    async fn read(&mut self, read: &Read) -> Result<Vec<ChatMessage>, String> {
        let command = redis::cmd("XREVRANGE")
            .arg(stream_key(&format!("room:{}", read.room)))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(read.limit)
            .clone();
        let Some(Value::Array(entries)) = self.call::<Value>(&command).await else {
            self.history_counts.failures.inc();
            return Err(UNAVAILABLE.to_string());
        };
        // Newest first from XREVRANGE: the client reads them oldest first.
        let mut messages: Vec<ChatMessage> = entries.iter().filter_map(stream_entry).collect();
        messages.reverse();
        Ok(messages)
    }
    // ANCHOR_END: history
}

/// The message in one entry of a stream: `[id, [field, value]]`, the value our JSON. An entry
/// that is not one of ours is passed over.
fn stream_entry(entry: &Value) -> Option<ChatMessage> {
    let Value::Array(entry) = entry else {
        return None;
    };
    let [_id, Value::Array(fields)] = entry.as_slice() else {
        return None;
    };
    let [_field, Value::BulkString(json)] = fields.as_slice() else {
        return None;
    };
    let mut message: ChatMessage = serde_json::from_slice(json).ok()?;
    message.history = true;
    Some(message)
}

fn stream_key(scope: &str) -> String {
    format!("fanout:history:{scope}")
}
