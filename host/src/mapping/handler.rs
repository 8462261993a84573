//! What a mapping invokes: a [`Handler`] takes a batch and answers as a handler
//! does. In the host it is a function's Wasm component on the shared runtime;
//! the benchmark also plugs in the same handler compiled natively, to measure the
//! loop without the sandbox.

use std::sync::Arc;

use async_trait::async_trait;

use crate::record::Batch;
use crate::runtime::{HandlerResponse, InvokeError, InvokeRequest, LoadedComponent, Runtime};

#[async_trait]
pub trait Handler: Send + Sync {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError>;
}

/// A function's component, invoked on the host's runtime.
pub struct WasmHandler {
    pub runtime: Arc<Runtime>,
    pub component: LoadedComponent,
    /// `ReservedConcurrentExecutions`: invocations beyond it wait their turn.
    pub concurrency: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl Handler for WasmHandler {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        let _permit = match &self.concurrency {
            Some(limit) => Some(limit.acquire().await.map_err(|_| InvokeError::Throttled("the function is stopping".into()))?),
            None => None,
        };
        self.runtime.invoke(&self.component, batch, request).await
    }
}
