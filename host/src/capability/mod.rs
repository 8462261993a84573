//! The capabilities an execution role grants, as host interfaces of `wit/`:
//! putting records ([`streams`]), key-value state ([`kv`]), outbound HTTP
//! ([`http`]), and WASI's files and sockets ([`wasi`]).
//!
//! Every call is checked against the function's role first
//! ([`crate::role::Grants::check`]); a denial is returned to the guest as
//! `access-denied` and never reaches a service. The services themselves are
//! shared by every function of the host ([`Services`]): the embedded store for
//! local streams and tables, and AWS clients built on first use.
//!
//! Each capability owns what it keeps for one invocation, and links itself
//! into the runtime's linker through a projection from the store's data to
//! that state, as Spin's factors do: the runtime holds one [`Capabilities`]
//! and implements [`HasCapabilities`], and knows no capability by name. A new
//! capability is a module here, a field of [`Capabilities`] and a line of
//! [`add_to_linker`].

pub mod http;
pub mod kv;
pub mod output;
pub mod streams;
pub mod wasi;

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::{ResourceTable, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::contract::errors::Error as GuestError;
use crate::role::{AccessDenied, Grants};
use crate::store::embedded::EmbeddedStore;
pub use wasi::{CommandIo, Output};

/// What a capability call reaches: the host's embedded store and its AWS clients.
pub struct Services {
    embedded: Option<Arc<EmbeddedStore>>,
    /// The connection capability calls use, opened on first use. One is enough:
    /// SQLite runs one writer at a time anyway, and it spares each call opening
    /// the database.
    connection: std::sync::Mutex<Option<rusqlite::Connection>>,
    /// AWS clients by region, built on first use with the host's AWS
    /// configuration (credentials chain, `AWS_ENDPOINT_URL`).
    kinesis: tokio::sync::Mutex<HashMap<String, aws_sdk_kinesis::Client>>,
    dynamodb: tokio::sync::Mutex<HashMap<String, aws_sdk_dynamodb::Client>>,
    /// The partition key's attribute name of each DynamoDB table used, by ARN.
    table_keys: tokio::sync::Mutex<HashMap<String, String>>,
}

impl Services {
    pub fn new(embedded: Option<Arc<EmbeddedStore>>) -> Services {
        Services {
            embedded,
            connection: std::sync::Mutex::new(None),
            kinesis: Default::default(),
            dynamodb: Default::default(),
            table_keys: Default::default(),
        }
    }

    /// Runs `work` on the embedded store, off the async workers.
    async fn with_embedded<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, GuestError> + Send + 'static,
    ) -> Result<T, GuestError> {
        let services = Arc::clone(self);
        blocking(move || {
            let store = services.embedded.as_ref().ok_or_else(|| {
                GuestError::Unavailable("this host has no embedded store (eddy invoke runs without one)".into())
            })?;
            let mut slot = services.connection.lock().map_err(|_| GuestError::Unavailable("embedded store: a call failed".into()))?;
            let conn = match &mut *slot {
                Some(conn) => conn,
                empty => empty.insert(store.connect().map_err(|e| GuestError::Unavailable(format!("embedded store: {e:#}")))?),
            };
            work(conn)
        })
        .await
    }

    /// Tells a local stream's readers of records a function put there.
    fn announce(&self, stream: &str, landed: &[crate::source::local::PutResult]) {
        if let Some(store) = &self.embedded {
            crate::source::local::announce(store, stream, landed);
        }
    }

    async fn kinesis(&self, region: &str) -> aws_sdk_kinesis::Client {
        client_for(&self.kinesis, region, aws_sdk_kinesis::Client::new).await
    }

    async fn dynamodb(&self, region: &str) -> aws_sdk_dynamodb::Client {
        client_for(&self.dynamodb, region, aws_sdk_dynamodb::Client::new).await
    }
}

/// The client of a region from `cache`, built on first use.
async fn client_for<C: Clone>(
    cache: &tokio::sync::Mutex<HashMap<String, C>>,
    region: &str,
    build: fn(&aws_config::SdkConfig) -> C,
) -> C {
    let mut clients = cache.lock().await;
    if let Some(client) = clients.get(region) {
        return client.clone();
    }
    let client = build(&crate::source::aws_config(None, Some(region)).await);
    clients.insert(region.to_owned(), client.clone());
    client
}

/// What the capabilities keep for one instance (one invocation, or the
/// invocations of a warm instance: WASI's resources must outlive a call).
pub struct Capabilities {
    /// The role and the services, for `streams` and `kv`.
    calls: CapabilityState,
    wasi: wasi::WasiState,
    http: http::HttpState,
    /// WASI's resources, which wasi:http shares.
    table: ResourceTable,
}

impl Capabilities {
    /// `capture_bytes`: how much of what a WASI guest prints is kept for the log.
    pub fn new(grants: Arc<Grants>, services: Arc<Services>, environment: Arc<[(String, String)]>, capture_bytes: usize) -> Capabilities {
        Capabilities {
            http: http::HttpState::new(Arc::clone(&grants)),
            wasi: wasi::WasiState::new(environment, Arc::clone(&grants), capture_bytes),
            calls: CapabilityState { grants, services },
            table: ResourceTable::new(),
        }
    }

    /// A command handler's standard streams, set before it is instantiated.
    pub fn set_command(&mut self, io: CommandIo) {
        self.wasi.set_command(io);
    }

    /// Where a WASI guest prints, once it has used WASI.
    pub fn output(&self) -> Option<&Output> {
        self.wasi.output()
    }

    /// WASI's view, for the store data's `WasiView`.
    pub fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.wasi.ctx(), table: &mut self.table }
    }

    /// wasi:http's view, for the store data's `WasiHttpView`.
    pub fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

/// The store data of an invocation: it holds the capabilities, and gives WASI
/// and wasi:http their views of them (by [`Capabilities::wasi`] and
/// [`Capabilities::http`]).
pub trait HasCapabilities: WasiView + WasiHttpView + Send + 'static {
    fn capabilities(&mut self) -> &mut Capabilities;
}

/// Links every capability's interfaces, each reaching its own state through
/// the store data `T`.
pub fn add_to_linker<T: HasCapabilities>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    streams::add_to_linker(linker).map_err(|e| anyhow::anyhow!("cannot link eddy:handler/streams: {e:#}"))?;
    kv::add_to_linker(linker).map_err(|e| anyhow::anyhow!("cannot link eddy:handler/kv: {e:#}"))?;
    wasmtime_wasi::p2::add_to_linker_async(linker).map_err(|e| anyhow::anyhow!("cannot link WASI: {e:#}"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker).map_err(|e| anyhow::anyhow!("cannot link wasi:http: {e:#}"))?;
    Ok(())
}

/// The projection `streams` and `kv` link through.
fn calls<T: HasCapabilities>(data: &mut T) -> &mut CapabilityState {
    &mut data.capabilities().calls
}

/// The role and services a `streams` or `kv` call is made with.
pub struct CapabilityState {
    pub grants: Arc<Grants>,
    pub services: Arc<Services>,
}

impl CapabilityState {
    /// Checks a call against the role, turning a denial into the guest's error.
    fn check(&self, action: &str, resource: &str) -> Result<(), GuestError> {
        self.grants.check(action, resource).map_err(denied)
    }
}

fn denied(error: AccessDenied) -> GuestError {
    GuestError::AccessDenied(error.to_string())
}

/// A stream or table named by a capability call: one of the host's embedded
/// ones, or an AWS resource by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Local { name: String, arn: String },
    Aws { arn: String, region: String, name: String },
}

impl Target {
    pub fn arn(&self) -> &str {
        match self {
            Target::Local { arn, .. } | Target::Aws { arn, .. } => arn,
        }
    }

    /// `name` (embedded) or `arn:aws:SERVICE:REGION:ACCOUNT:KIND/NAME` (AWS; the
    /// region `local` is the embedded one again).
    pub fn parse(reference: &str, service: &str, kind: &str) -> Result<Target, GuestError> {
        let local_arn = |name: &str| {
            format!("arn:aws:{service}:{}:{}:{kind}/{name}", crate::source::local::LOCAL_REGION, crate::role::LOCAL_ACCOUNT)
        };
        let valid_name = |name: &str| crate::names::is_resource_name(name, 255);
        if !reference.starts_with("arn:") {
            if !valid_name(reference) {
                return Err(GuestError::Invalid(format!(
                    "{reference:?} is neither a {kind} name (letters, digits, _ . -) nor an ARN"
                )));
            }
            return Ok(Target::Local { name: reference.to_owned(), arn: local_arn(reference) });
        }
        let parts: Vec<&str> = reference.splitn(6, ':').collect();
        let resource = parts.get(5).and_then(|r| r.strip_prefix(kind)).and_then(|r| r.strip_prefix('/'));
        match (parts.as_slice(), resource) {
            ([_, _, s, region, _, _], Some(name)) if *s == service && valid_name(name) && !region.is_empty() => {
                if *region == crate::source::local::LOCAL_REGION {
                    Ok(Target::Local { name: name.to_owned(), arn: local_arn(name) })
                } else {
                    Ok(Target::Aws { arn: reference.to_owned(), region: (*region).to_owned(), name: name.to_owned() })
                }
            }
            _ => Err(GuestError::Invalid(format!(
                "{reference:?} is not a {service} {kind} ARN (arn:aws:{service}:REGION:ACCOUNT:{kind}/NAME)"
            ))),
        }
    }
}

/// Runs blocking work (SQLite) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, GuestError> + Send + 'static,
) -> Result<T, GuestError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(GuestError::Unavailable(format!("the host's worker failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Store data that is not the runtime's: the capabilities link into it
    /// all the same.
    struct Data {
        capabilities: Capabilities,
    }

    impl WasiView for Data {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            self.capabilities.wasi()
        }
    }

    impl WasiHttpView for Data {
        fn http(&mut self) -> WasiHttpCtxView<'_> {
            self.capabilities.http()
        }
    }

    impl HasCapabilities for Data {
        fn capabilities(&mut self) -> &mut Capabilities {
            &mut self.capabilities
        }
    }

    #[test]
    fn the_capabilities_link_into_any_store_data() {
        let engine = wasmtime::Engine::new(wasmtime::Config::new().wasm_component_model(true)).expect("engine");
        let mut linker = Linker::<Data>::new(&engine);
        add_to_linker(&mut linker).expect("every capability links through its projection");
        let grants = Grants::source_only("f");
        let mut data = Data { capabilities: Capabilities::new(grants, Arc::new(Services::new(None)), Arc::from([]), 1024) };
        // The projection reaches the calls' state.
        assert_eq!(&*calls(&mut data).grants.function, "f");
    }

    /// A capability is unit-tested on its own state: checked against the role,
    /// then served by the embedded store.
    #[tokio::test]
    async fn a_kv_call_is_checked_and_served_without_a_runtime() {
        use crate::contract::kv::Host as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("store"));
        let services = Arc::new(Services::new(Some(store)));
        let mut refused = CapabilityState { grants: Grants::source_only("f"), services: Arc::clone(&services) };
        let denied = refused.set("counts".into(), "k".into(), b"1".to_vec()).await.expect_err("no grant, no write");
        assert!(matches!(denied, GuestError::AccessDenied(_)), "{denied:?}");
        let policy = crate::role::policy::Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:PutItem"],
                "Resource":"arn:aws:dynamodb:local:000000000000:table/counts"}]}"#,
        )
        .expect("policy");
        let role = Arc::new(crate::role::Role::from_policy("writer", policy));
        let mut granted = CapabilityState { grants: Arc::new(Grants::new(Arc::from("f"), role, None)), services };
        granted.set("counts".into(), "k".into(), b"1".to_vec()).await.expect("granted");
        assert_eq!(granted.get("counts".into(), "k".into()).await.expect("read back"), Some(b"1".to_vec()));
    }


    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("orders", "kinesis", "stream").expect("name"),
            Target::Local { name: "orders".into(), arn: "arn:aws:kinesis:local:000000000000:stream/orders".into() }
        );
        assert_eq!(
            Target::parse("arn:aws:kinesis:local:000000000000:stream/orders", "kinesis", "stream").expect("local arn"),
            Target::Local { name: "orders".into(), arn: "arn:aws:kinesis:local:000000000000:stream/orders".into() }
        );
        assert_eq!(
            Target::parse("arn:aws:dynamodb:us-east-1:123:table/t", "dynamodb", "table").expect("arn"),
            Target::Aws { arn: "arn:aws:dynamodb:us-east-1:123:table/t".into(), region: "us-east-1".into(), name: "t".into() }
        );
        for bad in ["", "a b", "arn:aws:kinesis:us-east-1:1:table/t", "arn:aws:dynamodb:us-east-1:1:stream/s", "arn:aws:kinesis::1:stream/s", "arn:x"] {
            assert!(matches!(Target::parse(bad, "kinesis", "stream"), Err(GuestError::Invalid(_))), "{bad:?}");
        }
    }
}
