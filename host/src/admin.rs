//! The admin HTTP port: `/` (the status page), `/healthz` (the process
//! answers), `/readyz` (functions loaded, sources reached), `/status` (JSON),
//! `/status/history` (JSON samples for the page's charts), `/metrics`
//! (Prometheus) and `POST /streams/<name>/records` (ingest into a local stream).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::source::local::{self, PutResult, StreamDescription};
use crate::status::{FunctionStatus, StatusBoard, prometheus};
use crate::store::StoredCheckpoint;
use crate::store::CheckpointStore;
use crate::store::embedded::EmbeddedStore;

#[derive(Clone)]
pub struct AdminState {
    pub status: Arc<StatusBoard>,
    pub embedded: Arc<EmbeddedStore>,
    pub checkpoints: Arc<dyn CheckpointStore>,
}

/// The status page: one HTML file that reads `/status` and `/status/history`.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// The largest ingest request body.
const INGEST_BODY_LIMIT: usize = 8 << 20;

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", get(|| async { axum::response::Html(STATUS_PAGE) }))
        .route("/status/history", get(history))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/streams/{name}/records", post(put_records))
        // A PutRecords request carries up to 5 MiB of data, base64 in JSON.
        .layer(DefaultBodyLimit::max(INGEST_BODY_LIMIT))
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await
}

async fn status(State(state): State<AdminState>) -> Response {
    let functions: Vec<FunctionStatus> = state.status.snapshot();
    let streams: Vec<StreamDescription> = state.embedded.run(|c| local::list(&c)).await.unwrap_or_default();
    let checkpoints: Vec<StoredCheckpoint> = state.checkpoints.list().await.unwrap_or_default();
    axum::Json(crate::status::StatusReport { functions, streams, checkpoints }).into_response()
}

async fn history(State(state): State<AdminState>) -> Response {
    axum::Json(serde_json::json!({
        "interval_ms": crate::status::HISTORY_INTERVAL.as_millis() as u64,
        "samples": state.status.history(),
    }))
    .into_response()
}

/// 200 when ready; 503 with what is not, one reason a line.
async fn ready(State(state): State<AdminState>) -> Response {
    match state.status.readiness() {
        Ok(()) => "ready\n".into_response(),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready:\n{}\n", reasons.join("\n"))).into_response(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus(&state.status.snapshot()),
    )
        .into_response()
}

#[derive(Serialize)]
struct PutRecordsResponse {
    #[serde(rename = "FailedRecordCount")]
    failed_record_count: u32,
    #[serde(rename = "Records")]
    records: Vec<PutResult>,
}

async fn put_records(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!(
                "the request body is over the ingest endpoint's limit of {} MiB; send the records in several requests \
                 (a Kinesis PutRecords request carries at most 500 records and 5 MiB)\n",
                INGEST_BODY_LIMIT >> 20
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
        Err(rejection) => return rejection.into_response(),
    };
    let records = match crate::ingest::parse_put_records(&body) {
        Ok(records) => records,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let stream = name.clone();
    match state.embedded.run(move |mut conn| local::put(&mut conn, &name, &records)).await {
        Ok(landed) => {
            local::announce(&state.embedded, &stream, &landed);
            axum::Json(PutRecordsResponse { failed_record_count: 0, records: landed }).into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error:#}\n")).into_response(),
    }
}
