//! The admin port's side of `eddy mapping pause | resume | rewind`:
//! `POST /mappings/<function>/pause`, `/resume` and `/rewind` (body
//! `{"to": "TRIM_HORIZON"}`). Each writes the operator's word into the store the
//! mapping keeps its checkpoints in ([`crate::store::control`]), then waits
//! (a few seconds at most) until this host's mapping has acted on it, so that
//! the command returns when it has taken effect here. Other hosts of a cluster
//! act on it within a second.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::admin::AdminState;
use crate::status::{FunctionState, FunctionStatus};
use crate::store::{CheckpointStore, MappingKey, RewindTarget, now_ms};

/// How long a command waits for this host's mapping to act on it.
const ACT_WITHIN: Duration = Duration::from_secs(15);

/// Where each mapping's checkpoints, and so its control, live: the embedded
/// store, or in cluster mode the lease table (once it is open) for the
/// mappings of AWS sources.
#[derive(Default)]
pub struct ControlStores {
    pub embedded: OnceLock<Arc<dyn CheckpointStore>>,
    pub cluster: OnceLock<Arc<dyn CheckpointStore>>,
}

impl ControlStores {
    fn for_source(&self, source: &str) -> Option<&Arc<dyn CheckpointStore>> {
        if source.starts_with("local:") {
            self.embedded.get()
        } else {
            self.cluster.get().or(self.embedded.get())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewindRequest {
    /// TRIM_HORIZON, LATEST, a time, or SHARD:SEQUENCE_NUMBER.
    pub to: String,
}

/// What a command did, as the command line prints it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ControlResponse {
    pub function: String,
    pub source: String,
    /// The function's state on this host afterwards.
    pub state: String,
    /// The rewind recorded (`rewind` only).
    pub rewind_id: Option<u64>,
    pub rewound_to: Option<String>,
    /// False when this host's mapping has not acted on it yet (it is not running
    /// here, or did not within the wait): it will when it runs.
    pub acted: bool,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// The function's status and its mapping's store, or the refusal to send.
fn mapping(
    state: &AdminState,
    function: &str,
) -> Result<(FunctionStatus, MappingKey, Arc<dyn CheckpointStore>), Response> {
    let Some(status) = state.status.function(function) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            format!("no function named {function} on this host"),
        ));
    };
    let Some(source) = status.source.clone() else {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "{function} has not loaded yet, so its mapping is not known ({})",
                status.error.as_deref().unwrap_or("loading")
            ),
        ));
    };
    let Some(store) = state.controls.for_source(&source).cloned() else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the host's store is not open yet".to_owned(),
        ));
    };
    Ok((
        status,
        MappingKey {
            function: function.to_owned(),
            source,
        },
        store,
    ))
}

/// Waits until `done` holds of the function's status here, or [`ACT_WITHIN`].
async fn wait_for(
    state: &AdminState,
    function: &str,
    done: impl Fn(&FunctionStatus) -> bool,
) -> Option<FunctionStatus> {
    let deadline = tokio::time::Instant::now() + ACT_WITHIN;
    loop {
        let status = state.status.function(function)?;
        if done(&status) {
            return Some(status);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn store_failed(error: crate::store::StoreError) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("cannot write to the mapping's store: {error:#}"),
    )
}

pub async fn pause(state: State<AdminState>, function: Path<String>) -> Response {
    set_paused(state, function, true).await
}

pub async fn resume(state: State<AdminState>, function: Path<String>) -> Response {
    set_paused(state, function, false).await
}

async fn set_paused(
    State(state): State<AdminState>,
    Path(function): Path<String>,
    paused: bool,
) -> Response {
    let (status, key, store) = match mapping(&state, &function) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if let Err(error) = store.set_paused(&key, paused).await {
        return store_failed(error);
    }
    tracing::info!(function = %function, source = %key.source, "{} asked for", if paused { "pause" } else { "resume" });
    // Only a mapping that runs here shows it; a disabled or failed one keeps
    // the word for when it runs.
    let runs_here = matches!(status.state, FunctionState::Running | FunctionState::Paused);
    let wanted = if paused {
        FunctionState::Paused
    } else {
        FunctionState::Running
    };
    let acted = match runs_here {
        true => wait_for(&state, &function, |s| s.state == wanted).await,
        false => None,
    };
    answer(&state, function, key.source, status.state, None, acted.is_some())
}

pub async fn rewind(
    State(state): State<AdminState>,
    Path(function): Path<String>,
    body: Result<axum::Json<RewindRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let axum::Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"to\": \"TRIM_HORIZON\"}} or the like: {rejection}"),
            );
        }
    };
    let (status, key, store) = match mapping(&state, &function) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let target = match RewindTarget::parse(&request.to, now_ms()) {
        Ok(target) => target,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error.to_string()),
    };
    if let Err(error) = target.check_source(!key.source.starts_with("dynamodb:")) {
        return refuse(StatusCode::BAD_REQUEST, error.to_string());
    }
    let rewind = match store.request_rewind(&key, &target).await {
        Ok(rewind) => rewind,
        Err(error) => return store_failed(error),
    };
    tracing::info!(function = %function, source = %key.source, id = rewind.id, "rewind to {target} asked for");
    let runs_here = matches!(status.state, FunctionState::Running | FunctionState::Paused);
    let acted = match runs_here {
        true => {
            wait_for(&state, &function, |s| {
                s.rewound.as_ref().is_some_and(|r| r.id >= rewind.id)
            })
            .await
        }
        false => None,
    };
    answer(&state, function, key.source, status.state, Some((rewind.id, target.to_string())), acted.is_some())
}

/// What a command did, with the function's state on this host now.
fn answer(
    state: &AdminState,
    function: String,
    source: String,
    state_before: FunctionState,
    rewind: Option<(u64, String)>,
    acted: bool,
) -> Response {
    let state_now = state.status.function(&function).map_or(state_before, |s| s.state);
    let (rewind_id, rewound_to) = rewind.unzip();
    axum::Json(ControlResponse { function, source, state: state_now.as_str().to_owned(), rewind_id, rewound_to, acted })
        .into_response()
}
