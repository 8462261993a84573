//! What every shard loop of one mapping shares, prepared once when the mapping
//! starts: the source's description, the compiled filters, the on-failure
//! destination, and the moment LATEST is pinned to.

use std::sync::Arc;

use super::destination::FailureSink;
use crate::filter::RecordFilter;
use super::{FunctionVersion, MappingContext};
use crate::manifest::StartingPosition;
use crate::source::SourceInfo;
use crate::store::{StoreError, now_ms};

/// What every shard loop of one mapping shares, prepared once.
pub struct Shared {
    pub info: SourceInfo,
    pub filter: Option<Arc<RecordFilter>>,
    pub sink: Option<FailureSink>,
    pub function_arn: String,
    /// For LATEST: when the mapping first started, so that every shard (and every
    /// restart) starts from the same moment.
    pub started_at_ms: u64,
}

impl Shared {
    pub async fn new(function: &FunctionVersion, info: SourceInfo, started_at_ms: u64) -> anyhow::Result<Shared> {
        let config = &function.manifest.event_source;
        let filter = if config.filter_patterns.is_empty() {
            None
        } else {
            Some(Arc::new(RecordFilter::new(&config.filter_patterns)?))
        };
        let sink = match &config.on_failure {
            Some(on_failure) => {
                let uuid = super::destination::sink::mapping_uuid(&function.name, &config.source.id());
                Some(FailureSink::open(on_failure, &uuid).await?)
            }
            None => None,
        };
        Ok(Shared { function_arn: function.arn(&info.region), info, filter, sink, started_at_ms })
    }
}

/// When the mapping first ran: LATEST is pinned to that moment, kept in the
/// store beside the checkpoints, so a restart does not skip what came meanwhile.
/// A stored start that cannot be read is an error, never replaced by "now".
pub async fn started_at(function: &FunctionVersion, context: &MappingContext) -> Result<u64, StoreError> {
    let config = &function.manifest.event_source;
    let mapping = crate::store::MappingKey { function: function.name.to_string(), source: config.source.id() };
    match context.store.mapping_start(&mapping).await? {
        Some(ms) => Ok(ms),
        None if config.starting_position == StartingPosition::Latest => context.store.record_mapping_start(&mapping, now_ms()).await,
        None => Ok(now_ms()),
    }
}
