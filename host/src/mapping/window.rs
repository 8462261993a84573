//! Tumbling windows (`TumblingWindowInSeconds`): records are grouped into fixed,
//! back-to-back windows by their arrival time; the function gets the state it
//! returned last in the window with each batch, returns the new state, and when
//! the window ends is invoked once more, with no records and
//! `isFinalInvokeForWindow`, to hand the final state over. A state past 1 MB ends
//! its window early (`isWindowTerminatedEarly`); the records after it start the
//! same window afresh.
//!
//! The state is stored with the shard's checkpoint, in one write, so a restart
//! resumes the window where the checkpoint is, neither counting a batch twice nor
//! losing one. Windows do not cross a reshard: a shard's open window ends with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{Records, TumblingWindow};
use crate::runtime::HandlerResponse;

/// Lambda's cap on a window's state.
pub const MAX_STATE_BYTES: usize = 1024 * 1024;
/// How long after a window's end it is closed when no later record has come:
/// enough for records that arrived in time to be read.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The open window of a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindow {
    pub start_ms: u64,
    pub end_ms: u64,
    /// The state the function returned last: a JSON object.
    pub state: String,
    /// The state passed 1 MB: the window is to end early.
    #[serde(skip)]
    pub over_cap: bool,
}

impl OpenWindow {
    pub fn new(start_ms: u64, width: Duration) -> OpenWindow {
        OpenWindow { start_ms, end_ms: start_ms + width.as_millis() as u64, state: "{}".into(), over_cap: false }
    }

    /// What the function is given with a batch.
    pub fn for_invocation(&self, is_final: bool, terminated_early: bool) -> TumblingWindow {
        TumblingWindow {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            state: self.state.clone(),
            is_final_invoke_for_window: is_final,
            is_window_terminated_early: terminated_early,
        }
    }

    /// Takes the state a response returned, if it returned one.
    pub fn update(&mut self, state: Option<String>) {
        if let Some(state) = state {
            self.over_cap = state.len() > MAX_STATE_BYTES;
            self.state = state;
        }
    }
}

/// The start of the window a record that arrived at `arrival_ms` falls in.
pub fn window_start(arrival_ms: u64, width: Duration) -> u64 {
    let width = (width.as_millis() as u64).max(1);
    arrival_ms - arrival_ms % width
}

/// Cuts `records` after the run of records in the first record's window; returns
/// the rest, and the window start of the run.
pub fn split_first_window(records: &mut Records, width: Duration) -> (u64, Records) {
    let Some(first) = records.arrival_ms(0) else {
        return (0, Records::Kinesis(Vec::new()));
    };
    let start = window_start(first, width);
    let cut = (1..records.len())
        .find(|&i| records.arrival_ms(i).is_some_and(|t| window_start(t, width) != start))
        .unwrap_or(records.len());
    (start, records.split_off(cut))
}

/// The state a response returned: `Ok(None)` when it returned none, an error
/// when what it returned is not a JSON object.
pub fn returned_state(response: &HandlerResponse) -> Result<Option<String>, String> {
    let state = match response {
        HandlerResponse::Typed(r) => match &r.state {
            None => return Ok(None),
            Some(text) => serde_json::from_str::<Value>(text).map_err(|e| format!("the returned state is not JSON: {e}"))?,
        },
        HandlerResponse::Json(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut fields)) => match fields.remove("state") {
                None | Some(Value::Null) => return Ok(None),
                Some(state) => state,
            },
            _ => return Ok(None),
        },
    };
    if !state.is_object() {
        return Err("the returned state is not a JSON object".into());
    }
    Ok(Some(state.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchResponse, KinesisRecord};

    #[test]
    fn records_split_at_window_boundaries() {
        let at = |ms: u64| KinesisRecord {
            event_id: String::new(),
            partition_key: "k".into(),
            sequence_number: ms.to_string(),
            data: Vec::new(),
            approximate_arrival_timestamp_ms: ms,
            encryption_type: None,
        };
        let mut records = Records::Kinesis(vec![at(10_000), at(14_999), at(15_000), at(29_000)]);
        let (start, rest) = split_first_window(&mut records, Duration::from_secs(5));
        assert_eq!((start, records.len(), rest.len()), (10_000, 2, 2));
        let mut rest = rest;
        let (start, last) = split_first_window(&mut rest, Duration::from_secs(5));
        assert_eq!((start, rest.len(), last.len()), (15_000, 1, 1));
    }

    #[test]
    fn state_comes_from_either_world_and_must_be_an_object() {
        let typed = |state: Option<&str>| HandlerResponse::Typed(BatchResponse { batch_item_failures: vec![], state: state.map(str::to_owned) });
        assert_eq!(returned_state(&typed(None)), Ok(None));
        assert_eq!(returned_state(&typed(Some(r#"{"a": 1}"#))), Ok(Some(r#"{"a":1}"#.into())));
        assert!(returned_state(&typed(Some("[1]"))).is_err());
        let json = |text: &str| HandlerResponse::Json(text.into());
        assert_eq!(returned_state(&json(r#"{"state":{"n":2},"batchItemFailures":[]}"#)), Ok(Some(r#"{"n":2}"#.into())));
        assert_eq!(returned_state(&json(r#"{"batchItemFailures":[]}"#)), Ok(None));
        assert!(returned_state(&json(r#"{"state":"x"}"#)).is_err());
        let mut window = OpenWindow::new(0, Duration::from_secs(1));
        window.update(Some(format!(r#"{{"big":"{}"}}"#, "x".repeat(MAX_STATE_BYTES))));
        assert!(window.over_cap);
    }
}
