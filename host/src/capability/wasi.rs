//! The WASI 0.2 context of an invocation, locked down to what the role grants:
//! - environment: only the manifest's variables (Lambda's), none of the host's;
//! - files: a preopen for each directory the role grants (`eddy:ReadFile`
//!   read-only, `eddy:WriteFile` read-write), at the same path as on the host;
//!   none by default. Paths resolve inside a preopen only (`..` cannot leave it);
//! - sockets: each TCP connection and UDP datagram is checked as `eddy:Connect`
//!   on `IP:PORT`; binding to a chosen address or listening is never allowed
//!   (audited as `eddy:Bind` and `eddy:Listen`), and name lookup only when the
//!   role may connect somewhere;
//! - stdout and stderr: captured into the log after each invocation
//!   ([`super::output`]); for a command handler, stdin is the event and stdout
//!   the response.
//!   Clocks and random are always there.

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::output::LogPipe;
use crate::role::{Grants, actions};

/// Where a guest's printing goes, for the log: stdout (unless it is a
/// command's response) and stderr.
#[derive(Clone)]
pub struct Output {
    pub stdout: Option<LogPipe>,
    pub stderr: LogPipe,
}

/// A command handler's standard streams: the event in, the response out.
pub struct CommandIo {
    pub stdin: Vec<u8>,
    pub stdout: MemoryOutputPipe,
    /// Lambda's variables that say what the invocation is (a command has no
    /// `context` argument): function name, memory, request id, deadline.
    pub environment: Vec<(String, String)>,
}

/// WASI's part of an invocation: the context, built on first use (so only for
/// components that call WASI), and what the guest printed.
pub struct WasiState {
    environment: Arc<[(String, String)]>,
    grants: Arc<Grants>,
    capture_bytes: usize,
    /// A command handler's stdin and stdout, until the context is built.
    command: Option<CommandIo>,
    ctx: Option<WasiCtx>,
    output: Option<Output>,
}

impl WasiState {
    pub fn new(environment: Arc<[(String, String)]>, grants: Arc<Grants>, capture_bytes: usize) -> WasiState {
        WasiState { environment, grants, capture_bytes, command: None, ctx: None, output: None }
    }

    pub fn set_command(&mut self, io: CommandIo) {
        self.command = Some(io);
    }

    /// The guest's stdout and stderr, once it has used WASI.
    pub fn output(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    pub fn ctx(&mut self) -> &mut WasiCtx {
        let WasiState { environment, grants, capture_bytes, command, ctx, output } = self;
        ctx.get_or_insert_with(|| {
            let (ctx, pipes) = build(environment, grants, *capture_bytes, command.take());
            *output = Some(pipes);
            ctx
        })
    }
}

fn build(
    environment: &[(String, String)],
    grants: &Arc<Grants>,
    capture_bytes: usize,
    command: Option<CommandIo>,
) -> (WasiCtx, Output) {
    let stderr = LogPipe::new(capture_bytes);
    let mut builder = WasiCtxBuilder::new();
    builder.envs(environment).stderr(stderr.clone());
    let logged_stdout = match command {
        Some(command) => {
            builder
                .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(command.stdin))
                .stdout(command.stdout)
                .envs(&command.environment);
            None
        }
        None => {
            let stdout = LogPipe::new(capture_bytes);
            builder.stdout(stdout.clone());
            Some(stdout)
        }
    };

    for grant in grants.role.file_grants() {
        let perms = if grant.write { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        if let Err(error) = builder.preopened_dir(&grant.dir, &grant.dir, perms) {
            // Warned about once when the function loaded; not again per invocation.
            tracing::debug!(function = %grants.function, dir = %grant.dir,
                "the role grants {} but it cannot be opened: {error:#}", grant.dir);
        }
    }

    let may_connect = grants.role.may_connect();
    let checker = Arc::clone(grants);
    builder
        .allow_tcp(true)
        .allow_udp(true)
        .allow_ip_name_lookup(may_connect)
        .socket_addr_check(move |addr, usage| {
            let allowed = socket_allowed(&checker, addr, usage);
            Box::pin(async move { allowed })
        });
    (builder.build(), Output { stdout: logged_stdout, stderr })
}

fn socket_allowed(grants: &Grants, addr: SocketAddr, usage: SocketAddrUse) -> bool {
    match usage {
        SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => {
            grants.check(actions::CONNECT, &addr.to_string()).is_ok()
        }
        // The implicit bind before a connection or a datagram: any local
        // address, any port. It is allowed, so that the connection or datagram
        // itself is checked (and a denial of it audited with its address).
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind if addr.ip().is_unspecified() && addr.port() == 0 => true,
        // Binding a chosen address, listening, accepting: serving, which no
        // role grants.
        SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
            grants.refuse(actions::BIND, &addr.to_string());
            false
        }
        _ => {
            grants.refuse(actions::LISTEN, &addr.to_string());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wasmtime_wasi::sockets::SocketAddrUse;

    use super::socket_allowed;
    use crate::role::{Grants, Role};
    use crate::status::{FunctionState, FunctionStatus, StatusBoard};

    #[test]
    fn serving_sockets_are_refused_and_counted_and_the_implicit_bind_is_allowed() {
        let status = Arc::new(StatusBoard::default());
        status.set_function(FunctionStatus::new("f", FunctionState::Running), true);
        // A role with no eddy:Connect at all.
        let grants = Grants::new(Arc::from("f"), Arc::new(Role::source_only("f")), Some(Arc::clone(&status)));
        let addr = |a: &str| a.parse().expect("address");
        assert!(socket_allowed(&grants, addr("0.0.0.0:0"), SocketAddrUse::TcpBind), "the implicit bind of a connect");
        assert!(socket_allowed(&grants, addr("[::]:0"), SocketAddrUse::UdpBind));
        assert!(!socket_allowed(&grants, addr("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        assert!(!socket_allowed(&grants, addr("0.0.0.0:8080"), SocketAddrUse::TcpBind), "a chosen port");
        assert!(!socket_allowed(&grants, addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        let denied = &status.snapshot()[0].access_denied;
        assert_eq!(denied.get("eddy:Connect"), Some(&1), "{denied:?}");
        assert_eq!(denied.get("eddy:Bind"), Some(&1), "{denied:?}");
        assert_eq!(denied.get("eddy:Listen"), Some(&1), "{denied:?}");
    }
}
