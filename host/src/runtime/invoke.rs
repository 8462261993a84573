//! One invocation: take the shard's warm instance or instantiate one from the
//! function's `InstancePre`, call the handler, classify what went wrong, and
//! keep the instance for the shard's next batch if it finished well
//! ([`super::warm`]: any error discards it, so a trap poisons nothing).
//! Timeouts come from the epoch deadline,
//! which also makes a busy guest yield its thread every tick and charges its
//! function's CPU ration ([`super::ration`]): a greedy function pauses while
//! others are busy, and the pause moves its deadline.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::Runtime;
use super::component::{HandlerPre, LoadedComponent, World};
use super::host_state::{Deadline, HostState};
use super::limits::{LogLimitExceeded, MemoryLimitExceeded, MemoryLimiter, RESPONSE_LIMIT_BYTES, TimedOut};
use super::warm::{Exports, Instance, InstanceSlot};
use crate::capability::{Capabilities, CommandIo, Services};
use crate::record::{Batch, BatchResponse, Context};
use crate::role::Grants;

/// How long past its deadline an invocation blocked in a host call (where epoch
/// interruption cannot reach it) is given before it is abandoned.
const HOST_WAIT_GRACE: Duration = Duration::from_millis(50);

/// Bytes of stdout and stderr kept per invocation (for WASI guests that print).
const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;

/// What an invocation needs besides the batch.
pub struct InvokeRequest<'a> {
    pub function: &'a Arc<str>,
    pub shard: &'a Arc<str>,
    pub request_id: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub environment: &'a Arc<[(String, String)]>,
    /// Bytes of log output the invocation may write.
    pub log_limit_bytes: usize,
    /// The function's role, which every capability call is checked against.
    pub grants: &'a Arc<Grants>,
    pub services: &'a Arc<Services>,
    /// Where the shard keeps its warm instance; `None`: a fresh instance, dropped after.
    pub instance_slot: Option<&'a InstanceSlot>,
}

/// A handler's answer, by world.
#[derive(Debug, Clone)]
pub enum HandlerResponse {
    Typed(BatchResponse),
    /// The response JSON text.
    Json(String),
}

/// A function error: the invocation did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the handler returned an error: {0}")]
    Handler(String),
    #[error("the invocation timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    OutOfMemory(String),
    /// The response passed Lambda's 6 MB limit.
    #[error("the response is {0} bytes, over the limit of 6 MB (6291456 bytes) for a function's response")]
    ResponseTooLarge(usize),
    #[error("{0}")]
    LogLimit(String),
    #[error("the handler trapped: {0}")]
    Trap(String),
    #[error("the handler could not be instantiated: {0}")]
    Instantiate(String),
    /// Every instance slot was busy: the function was never reached.
    #[error("throttled: every instance slot is busy ({0}); raise --max-instances")]
    Throttled(String),
    /// The function's compiled code, let go of while it idled, could not be
    /// loaded again ([`super::resident`]): the function was never reached.
    #[error("the function's code could not be loaded again: {0}")]
    NotLoaded(String),
}

impl InvokeError {
    /// A short name for metrics and status.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::Handler(_) => "handler_error",
            InvokeError::Timeout(_) => "timeout",
            InvokeError::OutOfMemory(_) => "out_of_memory",
            InvokeError::ResponseTooLarge(_) => "response_too_large",
            InvokeError::LogLimit(_) => "log_limit",
            InvokeError::Trap(_) => "trap",
            InvokeError::Instantiate(_) => "instantiate",
            InvokeError::Throttled(_) => "throttled",
            InvokeError::NotLoaded(_) => "not_loaded",
        }
    }

    /// Whether the invocation reached the function at all. One that did not
    /// (throttled, or its code not loadable for now) is tried again without
    /// counting as an attempt, as Lambda does with throttles.
    pub fn reached_function(&self) -> bool {
        !matches!(self, InvokeError::Throttled(_) | InvokeError::NotLoaded(_))
    }
}

/// What a handler is called with, by world.
enum Input<'a> {
    Typed(&'a Batch),
    Json(Cow<'a, str>),
    /// A command's event, already placed on its stdin.
    OnStdin,
}

/// How much a command may write to stdout before it traps; a response over
/// Lambda's 6 MB below that is refused as too large.
const COMMAND_STDOUT_CAPACITY: usize = 2 * RESPONSE_LIMIT_BYTES;

impl Runtime {
    /// Invokes a component's handler with one batch: lowered as it is into the typed
    /// world, or encoded as Lambda's event JSON for the JSON world.
    pub async fn invoke(
        &self,
        component: &LoadedComponent,
        batch: &Batch,
        request: InvokeRequest<'_>,
    ) -> Result<HandlerResponse, InvokeError> {
        let input = match component.world {
            World::TypedHandler | World::PackedHandler => Input::Typed(batch),
            World::JsonHandler | World::Command => Input::Json(Cow::Owned(crate::event::encode(batch))),
        };
        self.call(component, input, request).await
    }

    /// Invokes with Lambda's event JSON as given (for `eddy invoke`): the JSON world
    /// receives the text unchanged, the typed world the records it decodes to.
    pub async fn invoke_event(
        &self,
        component: &LoadedComponent,
        event_json: &str,
        request: InvokeRequest<'_>,
    ) -> Result<Result<HandlerResponse, InvokeError>, crate::event::DecodeError> {
        Ok(match component.world {
            World::TypedHandler | World::PackedHandler => {
                let batch = crate::event::decode(event_json)?;
                self.call(component, Input::Typed(&batch), request).await
            }
            World::JsonHandler | World::Command => {
                self.call(component, Input::Json(Cow::Borrowed(event_json)), request).await
            }
        })
    }

    async fn call(
        &self,
        component: &LoadedComponent,
        input: Input<'_>,
        request: InvokeRequest<'_>,
    ) -> Result<HandlerResponse, InvokeError> {
        // The memory budget first: the wait for room is not the function's time.
        let _memory = self.memory.reserve(request.memory_mb).await;
        let deadline = Deadline::new(request.timeout);
        let context = Context {
            function_name: request.function.to_string(),
            request_id: request.request_id.clone(),
            deadline_ms: crate::store::now_ms() + request.timeout.as_millis() as u64,
            memory_limit_mb: request.memory_mb,
        };
        // A command runs its `main` once per batch, in a fresh instance.
        let slot = request.instance_slot.filter(|_| component.world != World::Command);
        let ration = self.rations.start_invocation(request.function);
        let mut instance = match slot.and_then(|slot| slot.take(component.id)) {
            Some(warm) => warm,
            None => {
                // Counted for commands too: each of their batches starts one.
                if let Some(slot) = request.instance_slot {
                    slot.started_one();
                }
                Instance::new(self.new_store(&request, Arc::clone(&ration)), component.id)
            }
        };
        instance.store.data_mut().begin(request.request_id, deadline.clone(), ration);
        // Guest code may run from here (instantiation included) until the call
        // returns: the epoch ticks for as long.
        let _ticking = self.ticker.ticking();
        instance.store.set_epoch_deadline(1);
        let Instance { store, exports, .. } = &mut instance;

        // A command reads the event from stdin and answers on stdout.
        let mut command_stdout = None;
        let input = match (&component.pre, input) {
            (HandlerPre::Command(_), Input::Json(event)) => {
                let stdout = MemoryOutputPipe::new(COMMAND_STDOUT_CAPACITY);
                command_stdout = Some(stdout.clone());
                store.data_mut().capabilities.set_command(CommandIo {
                    stdin: event.into_owned().into_bytes(),
                    stdout,
                    environment: lambda_environment(&context),
                });
                Input::OnStdin
            }
            (_, input) => input,
        };

        // Epoch interruption stops a guest that computes past its deadline; one
        // that waits in the host (a socket, an HTTP response) is stopped by this
        // timer, a moment later.
        let call = async {
            match (&component.pre, input) {
                // The response is what it wrote to stdout, read below.
                (HandlerPre::Command(pre), Input::OnStdin) => match pre.instantiate_async(&mut *store).await {
                    Ok(command) => match command.wasi_cli_run().call_run(&mut *store).await {
                        Ok(Ok(())) => Ok(Ok(HandlerResponse::Json(String::new()))),
                        Ok(Err(())) => Ok(Err("the command exited with a failure status".to_owned())),
                        Err(error) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                            Some(wasmtime_wasi::I32Exit(0)) => Ok(Ok(HandlerResponse::Json(String::new()))),
                            Some(wasmtime_wasi::I32Exit(code)) => Ok(Err(format!("the command exited with status {code}"))),
                            None => Err(error),
                        },
                    },
                    Err(error) => Err(error.context(Instantiating)),
                },
                (HandlerPre::Typed(pre), Input::Typed(batch)) => {
                    if exports.is_none() {
                        *exports = Some(Exports::Typed(pre.instantiate_async(&mut *store).await.map_err(|e| e.context(Instantiating))?));
                    }
                    let Some(Exports::Typed(handler)) = exports else {
                        return Err(wasmtime::Error::msg("a warm instance of another world").context(Instantiating));
                    };
                    handler
                        .eddy_handler_typed()
                        .call_handle(&mut *store, batch, &context)
                        .await
                        .map(|r| r.map(HandlerResponse::Typed))
                }
                (HandlerPre::Packed(pre, handle), Input::Typed(batch)) => {
                    if exports.is_none() {
                        let instance = pre.instantiate_async(&mut *store).await.map_err(|e| e.context(Instantiating))?;
                        let handler = handle.bind(&mut *store, &instance).map_err(|e| e.context(Instantiating))?;
                        *exports = Some(Exports::Packed(handler, Vec::new()));
                    }
                    let Some(Exports::Packed(handler, buffer)) = exports else {
                        return Err(wasmtime::Error::msg("a warm instance of another world").context(Instantiating));
                    };
                    handler.call_handle(&mut *store, batch, buffer, &context).await.map(|r| r.map(HandlerResponse::Typed))
                }
                (HandlerPre::Json(pre), Input::Json(event)) => {
                    if exports.is_none() {
                        *exports = Some(Exports::Json(pre.instantiate_async(&mut *store).await.map_err(|e| e.context(Instantiating))?));
                    }
                    let Some(Exports::Json(handler)) = exports else {
                        return Err(wasmtime::Error::msg("a warm instance of another world").context(Instantiating));
                    };
                    handler
                        .eddy_handler_json()
                        .call_handle(&mut *store, &event, &context)
                        .await
                        .map(|r| r.map(HandlerResponse::Json))
                }
                _ => Err(wasmtime::Error::msg("the input does not match the component's world").context(Instantiating)),
            }
        };
        // The deadline (moved by any pauses meanwhile), with the grace.
        let timer = async {
            loop {
                let until = deadline.at() + HOST_WAIT_GRACE;
                if Instant::now() >= until {
                    return;
                }
                tokio::time::sleep_until(until.into()).await;
            }
        };
        let outcome = tokio::select! {
            outcome = call => outcome,
            () = timer => Err(TimedOut(request.timeout).into()),
        };
        store.data_mut().flush_output();
        // A command's response is what it wrote (even if it then trapped on
        // writing more than the pipe holds).
        let outcome = match command_stdout {
            Some(stdout) => {
                let written = stdout.contents();
                match outcome {
                    _ if written.len() > RESPONSE_LIMIT_BYTES => return Err(InvokeError::ResponseTooLarge(written.len())),
                    Ok(Ok(_)) => match String::from_utf8(written.to_vec()) {
                        Ok(text) => Ok(Ok(HandlerResponse::Json(text))),
                        Err(_) => Ok(Err("the command's output is not UTF-8 text".to_owned())),
                    },
                    other => other,
                }
            }
            None => outcome,
        };
        let result = match outcome {
            Ok(Ok(response)) => match response_size(&response) {
                size if size > RESPONSE_LIMIT_BYTES => Err(InvokeError::ResponseTooLarge(size)),
                _ => Ok(response),
            },
            Ok(Err(message)) => Err(InvokeError::Handler(message)),
            Err(error) => Err(classify(error)),
        };
        // Only an instance that finished well serves another batch.
        if let (Some(slot), Ok(_)) = (slot, &result) {
            slot.keep(instance, &self.warm_slots, &self.reaper);
        }
        result
    }

    /// A new store for an instance of the function `request` names.
    fn new_store(&self, request: &InvokeRequest<'_>, ration: Arc<super::ration::Ration>) -> Store<HostState> {
        let mut store = Store::new(
            &self.engine,
            HostState {
                limiter: MemoryLimiter::new((request.memory_mb as usize) << 20),
                function: Arc::clone(request.function),
                shard: Arc::clone(request.shard),
                request_id: String::new(),
                deadline: Deadline::new(request.timeout),
                timeout: request.timeout,
                ration,
                rations: Arc::clone(&self.rations),
                running_since: Instant::now(),
                log_bytes: 0,
                log_limit: request.log_limit_bytes,
                capabilities: Capabilities::new(
                    Arc::clone(request.grants),
                    Arc::clone(request.services),
                    Arc::clone(request.environment),
                    request.log_limit_bytes.min(OUTPUT_CAPTURE_BYTES),
                ),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut store| {
            let state = store.data_mut();
            let now = Instant::now();
            if now >= state.deadline.at() {
                return Err(TimedOut(state.timeout).into());
            }
            // What the guest ran since it last resumed (a wait in a host call
            // between two ticks counts at most two ticks).
            let ran = now.saturating_duration_since(state.running_since).min(2 * super::EPOCH_TICK);
            state.running_since = now;
            match state.rations.charge(&state.ration, ran) {
                None => Ok(UpdateDeadline::Yield(1)),
                Some(pause) => {
                    // The pause is the ration's, not the function's: the
                    // deadline moves with it.
                    state.deadline.extend(pause);
                    state.running_since = now + pause;
                    Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))))
                }
            }
        });
        store
    }
}

/// The variables Lambda sets that tell a command what it is running as (a
/// command has no `context` argument), plus the request id and the deadline.
fn lambda_environment(context: &Context) -> Vec<(String, String)> {
    vec![
        ("AWS_LAMBDA_FUNCTION_NAME".to_owned(), context.function_name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), context.memory_limit_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION".to_owned(), "$LATEST".to_owned()),
        ("EDDY_REQUEST_ID".to_owned(), context.request_id.clone()),
        ("EDDY_DEADLINE_MS".to_owned(), context.deadline_ms.to_string()),
    ]
}

/// A response's size as Lambda would count it: the bytes of its JSON, or for
/// the typed world the text it carries.
fn response_size(response: &HandlerResponse) -> usize {
    match response {
        HandlerResponse::Json(text) => text.len(),
        HandlerResponse::Typed(r) => {
            r.batch_item_failures.iter().map(|f| f.len()).sum::<usize>() + r.state.as_ref().map_or(0, |s| s.len())
        }
    }
}

/// Marks errors raised while instantiating, before the handler ran.
#[derive(Debug)]
struct Instantiating;

impl std::fmt::Display for Instantiating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("instantiating the component")
    }
}

fn classify(error: wasmtime::Error) -> InvokeError {
    if let Some(timeout) = error.downcast_ref::<TimedOut>() {
        return InvokeError::Timeout(timeout.0);
    }
    if let Some(limit) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return InvokeError::Throttled(limit.to_string());
    }
    if let Some(memory) = error.downcast_ref::<MemoryLimitExceeded>() {
        return InvokeError::OutOfMemory(memory.to_string());
    }
    if let Some(log) = error.downcast_ref::<LogLimitExceeded>() {
        return InvokeError::LogLimit(log.to_string());
    }
    if error.downcast_ref::<Instantiating>().is_some() && error.downcast_ref::<wasmtime::Trap>().is_none() {
        return InvokeError::Instantiate(format!("{error:#}"));
    }
    // The root cause says what happened ("wasm `unreachable` instruction executed");
    // the wasm backtrace goes to the debug log.
    tracing::debug!("trap: {error:?}");
    InvokeError::Trap(error.root_cause().to_string())
}
