//! Integration tests: real HTTP against the running app, on SQLite and on PostgreSQL.
//! One test binary (one build) for all of them; each module covers one resource.

mod helpers;
mod sse;

mod architecture;
mod auth;
mod authorization;
mod bad_input;
mod bounds;
mod chat_list;
mod chat_requests;
mod contacts;
mod conversations;
mod directory;
mod errors;
mod event_log;
mod failures;
mod files;
mod groups;
mod health;
mod media;
mod message_changes;
mod message_policy;
mod messages;
mod openapi;
mod people;
mod profiles;
mod push;
mod push_peers;
mod rate_limits;
mod realtime;
mod receipts;
mod search;
mod users;
