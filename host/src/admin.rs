//! The admin HTTP port: `/` (the status page), `/healthz` (the process
//! answers), `/readyz` (functions loaded, sources reached), `/status` (JSON),
//! `/status/history` (JSON samples for the page's charts), `/metrics`
//! (Prometheus), `POST /streams/<name>/records` (ingest into a local stream),
//! `POST /mappings/<function>/pause | resume | rewind` (`eddy mapping`,
//! [`crate::control_api`]) and `POST /` (the Kinesis API for local streams,
//! [`crate::kinesis_service`]).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
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
    /// Where `eddy mapping` writes its pauses and rewinds.
    pub controls: Arc<crate::control_api::ControlStores>,
}

/// The status page: one HTML file that reads `/status` and `/status/history`.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// The largest ingest request body: room for a record of 10 MiB (the most a
/// stream takes), base64 in JSON.
const INGEST_BODY_LIMIT: usize = 16 << 20;

/// How much of a body over the limit is read and thrown away, and for how long,
/// so that its sender gets the refusal (see `read_body`).
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `cancel` fires.
pub async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) -> std::io::Result<()> {
    let app = Router::new()
        // GET: the status page; POST: the Kinesis API for local streams.
        .route("/", get(|| async { axum::response::Html(STATUS_PAGE) }).post(kinesis_api))
        .route("/status/history", get(history))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/streams/{name}/records", post(put_records))
        .route("/mappings/{function}/pause", post(crate::control_api::pause))
        .route("/mappings/{function}/resume", post(crate::control_api::resume))
        .route("/mappings/{function}/rewind", post(crate::control_api::rewind))
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

/// The Kinesis JSON protocol for local streams ([`crate::kinesis_service`]).
async fn kinesis_api(State(state): State<AdminState>, headers: HeaderMap, body: Body) -> Response {
    if !crate::kinesis_service::is_kinesis_request(&headers) {
        return (StatusCode::BAD_REQUEST, "POST / is the Kinesis API: the request needs an X-Amz-Target header\n").into_response();
    }
    match read_body(body, INGEST_BODY_LIMIT).await {
        Ok(body) => crate::kinesis_service::serve(&state.embedded, &headers, body).await,
        Err(BodyRefused::TooLarge) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the admin port's limit of {} MiB\n", INGEST_BODY_LIMIT >> 20),
        )
            .into_response(),
        Err(BodyRefused::Unreadable(error)) => {
            (StatusCode::BAD_REQUEST, format!("the request body could not be read: {error}\n")).into_response()
        }
    }
}

async fn put_records(State(state): State<AdminState>, Path(name): Path<String>, body: Body) -> Response {
    let body = match read_body(body, INGEST_BODY_LIMIT).await {
        Ok(body) => body,
        Err(BodyRefused::TooLarge) => {
            let message = format!(
                "the request body is over the ingest endpoint's limit of {} MiB; send the records in several requests \
                 (a Kinesis PutRecords request carries at most 500 records and 10 MiB)\n",
                INGEST_BODY_LIMIT >> 20
            );
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
        Err(BodyRefused::Unreadable(error)) => {
            return (StatusCode::BAD_REQUEST, format!("the request body could not be read: {error}\n")).into_response();
        }
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

enum BodyRefused {
    TooLarge,
    Unreadable(axum::Error),
}

/// Reads a request body of at most `limit` bytes.
///
/// A longer body is read on to its end (at most `DRAIN_LIMIT` bytes, for at most
/// `DRAIN_TIME`) and thrown away before the refusal goes out. A server that
/// answers and closes while its client is still sending resets the connection,
/// and the client sees a broken pipe instead of the 413 that says what to do
/// (nginx's lingering close is the same remedy).
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, BodyRefused> {
    let mut collected: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyRefused::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if collected.len() + data.len() > limit {
            drain(body, collected.len() + data.len()).await;
            return Err(BodyRefused::TooLarge);
        }
        if collected.is_empty() && body.is_end_stream() {
            return Ok(data); // the whole body in one frame: no copy
        }
        collected.extend_from_slice(&data);
    }
    Ok(Bytes::from(collected))
}

/// Reads and discards the rest of a refused body, within the drain bounds.
async fn drain(mut body: Body, mut read: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read <= DRAIN_LIMIT {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    })
    .await;
}
