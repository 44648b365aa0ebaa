//! chat-api: a chat backend with a Chatify-compatible REST API.
//!
//! Where things live:
//! - [`startup`]: builds the HTTP server and its shared state; [`config`]: the environment.
//! - [`routes`]: the HTTP layer, one module per resource, one route table.
//! - [`auth`]: accounts, sessions, tokens, the `AuthUser` extractor.
//! - [`domain`]: validated input types.
//! - [`store`]: the only SQL, for PostgreSQL and SQLite.
//! - [`error`]: the one error type and its JSON envelope.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod openapi;
pub mod realtime;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod views;
