use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

async fn health_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/health", None).await;
    assert_eq!(reply.data(StatusCode::OK)["status"], "ok");
}

async fn ready_answers_ok_when_the_database_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/ready", None).await;
    assert_eq!(reply.data(StatusCode::OK)["status"], "ok");
}

async fn swagger_ui_and_the_spec_are_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec = app.get("/api-docs/openapi.json", None).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(spec.body["paths"]["/api/v1/message"]["post"].is_object());
    let ui = app.client.get(app.url("/swagger-ui/")).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

both_backends!(
    health_answers_ok,
    ready_answers_ok_when_the_database_does,
    swagger_ui_and_the_spec_are_served
);
