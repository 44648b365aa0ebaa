//! chat-api: a chat backend with a Chatify-compatible REST API.
//!
//! Where things live, from the entry down (dependencies point only downward; a test reads
//! the source and fails on one that points up):
//! - [`startup`]: builds the HTTP server and its shared state; [`openapi`]: the document.
//! - [`routes`]: the HTTP layer, one module per resource, one route table that also
//!   documents every route, and the extractors that refuse bad input.
//! - [`state`]: what every handler shares.
//! - [`auth`]: accounts, sessions, tokens, the `AuthUser` extractor; [`realtime`]: the hub,
//!   streams, fan-out, presence and event payloads.
//! - [`limits`]: the per-user rate limits; [`error`]: the one error type and its JSON envelope; [`views`]: the JSON shapes of
//!   resources; [`config`]: the environment.
//! - [`files`]: the bytes of uploads (a local folder or S3), their sniffed types, signed links.
//! - [`push`]: the push worker (Web Push, FCM) that reads the event log; [`outbound`]: the
//!   rules for calling URLs that users supply.
//! - [`store`]: the only SQL, for PostgreSQL and SQLite, with the authorization gate
//!   (`store/access.rs`) that every conversation-scoped operation starts from.
//! - [`domain`]: validated input types.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod files;
pub mod limits;
pub mod openapi;
pub mod outbound;
pub mod push;
pub mod realtime;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod views;
