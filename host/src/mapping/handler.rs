//! What a mapping invokes: a [`Handler`] takes a batch and answers as a handler
//! does. In the host it is a function's Wasm component on the shared runtime;
//! the benchmark also plugs in the same handler compiled natively, to measure the
//! loop without the sandbox.

use std::sync::Arc;

use async_trait::async_trait;

use crate::record::Batch;
use crate::runtime::{HandlerResponse, InvokeError, InvokeRequest, LoadedComponent, ResidentComponent, Runtime};

#[async_trait]
pub trait Handler: Send + Sync {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError>;
}

/// A function's component, invoked on the host's runtime.
pub struct WasmHandler {
    runtime: Arc<Runtime>,
    code: Code,
}

enum Code {
    /// Loaded for as long as the handler lives (`eddy test`, the benches).
    Loaded(LoadedComponent),
    /// Let go of while the function idles, loaded again by its next batch (the host).
    Resident(Arc<ResidentComponent>),
}

impl WasmHandler {
    /// `component`, kept loaded.
    pub fn new(runtime: Arc<Runtime>, component: LoadedComponent) -> WasmHandler {
        WasmHandler { runtime, code: Code::Loaded(component) }
    }

    /// A component that is let go of while its function idles.
    pub fn resident(runtime: Arc<Runtime>, component: Arc<ResidentComponent>) -> WasmHandler {
        WasmHandler { runtime, code: Code::Resident(component) }
    }
}

#[async_trait]
impl Handler for WasmHandler {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        match &self.code {
            Code::Loaded(component) => self.runtime.invoke(component, batch, request).await,
            Code::Resident(resident) => {
                let component = resident.acquire(&self.runtime).await?;
                self.runtime.invoke(&component, batch, request).await
            }
        }
    }
}

/// `ReservedConcurrentExecutions`: a handler that runs at most so many
/// invocations at once, over every shard and lane of the function; the others
/// wait their turn.
pub struct ConcurrencyLimited {
    inner: Arc<dyn Handler>,
    slots: tokio::sync::Semaphore,
}

impl ConcurrencyLimited {
    /// `handler` limited to `limit` invocations at once (as it is without a limit).
    pub fn wrap(handler: Arc<dyn Handler>, limit: Option<u32>) -> Arc<dyn Handler> {
        match limit {
            Some(n) => Arc::new(ConcurrencyLimited { inner: handler, slots: tokio::sync::Semaphore::new(n as usize) }),
            None => handler,
        }
    }
}

#[async_trait]
impl Handler for ConcurrencyLimited {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        // The semaphore is never closed, so acquiring fails only if it were.
        let _slot = self.slots.acquire().await.map_err(|_| InvokeError::Throttled("the function is stopping".into()))?;
        self.inner.invoke(batch, request).await
    }
}
