//! Outbound HTTP through wasi:http, only to the URLs the role allows
//! (`eddy:HttpRequest` on the request's URL). A denied request fails in the guest
//! with wasi:http's `HTTP-request-denied` error, before any connection is made.
//!
//! Headers: the host adds none of its own (no credentials of the host ever leave
//! with a request), and the guest may not set the hop-by-hop and proxy
//! credential headers (wasmtime's default forbidden list).

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks};

use crate::role::url::RequestUrl;
use crate::role::{Grants, actions};

/// The hooks wasi:http calls: the role's check before each request.
pub struct HttpHooks {
    grants: Arc<Grants>,
}

/// The per-invocation state of wasi:http.
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: HttpHooks,
}

impl HttpState {
    pub fn new(grants: Arc<Grants>) -> HttpState {
        HttpState { ctx: WasiHttpCtx::new(), hooks: HttpHooks { grants } }
    }

    /// wasi:http's view, with the resource table it shares with WASI.
    pub fn view<'a>(&'a mut self, table: &'a mut wasmtime_wasi::ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView { ctx: &mut self.ctx, table, hooks: &mut self.hooks }
    }
}


type SendResult = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: SendResult,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, SendResult), Error>> + Send> {
        _ = fut;
        // The grant is checked on the URL as the connection will reach it
        // (`role::url`); a URL that cannot be read that way is refused.
        let url = match RequestUrl::from_uri(request.uri()) {
            Ok(url) => url.resource(),
            Err(rejected) => {
                tracing::debug!(function = %self.grants.function, uri = %request.uri(), "refused: {rejected}");
                self.grants.refuse(actions::HTTP_REQUEST, &request.uri().to_string());
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        if self.grants.check(actions::HTTP_REQUEST, &url).is_err() {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        tracing::debug!(function = %self.grants.function, url, "outbound HTTP request");
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as SendResult))
        })
    }
}
