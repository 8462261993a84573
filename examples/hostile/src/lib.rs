//! A misbehaving handler, for the tests of the sandbox. What it does depends on
//! the records' data.
//!
//! The first record decides for the limits:
//! - `loop`: spins forever (the timeout must stop it);
//! - `oom`: allocates without bound (the memory limit must stop it);
//! - `recurse`: recurses without bound (the stack must overflow into a trap);
//! - `big-response`: answers with 7 MB of batch item failures (over 6 MB);
//! - `log-flood`: logs without end (the log limit must stop it);
//! - `trap`: panics;
//! - `error`: returns an error.
//!
//! Otherwise each record is a probe, `WHAT ARGUMENT`, whose outcome is logged as
//! `probe WHAT: OUTCOME` and the batch succeeds:
//! - `env`: the environment it sees;
//! - `read PATH` / `write PATH`: a file, through the preopened directories;
//! - `read-at DIR RELATIVE`: a path relative to the preopen `DIR` (`../` escapes);
//! - `http URL`: a GET through wasi:http;
//! - `header NAME`: whether wasi:http lets the guest set that request header;
//! - `tcp IP:PORT`: a TCP connection through wasi:sockets;
//! - `put STREAM`: a record put on a stream;
//! - `kv TABLE`: a value set in a table, read back, compared-and-set;
//! - `count`: how many invocations this instance has served, this one included
//!   (module state: 1 in a fresh instance, more in a warm one);
//! - `grow MB`: keeps MB more of memory for the life of the instance;
//! - anything else: logged as `ok DATA`.

use eddy_guest::capability::{kv, streams};
use eddy_guest::prelude::*;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};

pub struct Hostile;

/// Invocations this instance has served: state at module scope, which lives
/// as long as the instance does.
static INVOCATIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TypedHandler for Hostile {
    fn handle(batch: Batch, _context: Context) -> Result<BatchResponse, String> {
        INVOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Records::Kinesis(records) = &batch.records else {
            return Err("expected Kinesis records".into());
        };
        let first = records.first().map(|r| r.data.as_slice()).unwrap_or_default();
        match first {
            b"loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"recurse" => {
                let depth = recurse(std::hint::black_box(1));
                Err(format!("recursion returned at depth {depth}"))
            }
            b"big-response" => {
                let failure = "9".repeat(1 << 20);
                Ok(BatchResponse { batch_item_failures: vec![failure; 7], state: None })
            }
            b"log-flood" => {
                let line = "x".repeat(1000);
                loop {
                    info!("{line}");
                }
            }
            b"trap" => panic!("asked to trap"),
            b"error" => Err("asked to fail".into()),
            _ => {
                for record in records {
                    let text = String::from_utf8_lossy(&record.data);
                    let (what, argument) = text.split_once(' ').unwrap_or((&text, ""));
                    match probe(what, argument) {
                        Some(outcome) => info!("probe {what}: {outcome}"),
                        None => info!("ok {text}"),
                    }
                }
                Ok(BatchResponse { batch_item_failures: Vec::new(), state: None })
            }
        }
    }
}

/// Recursion whose frames live on wasm's own call stack (no locals in linear
/// memory), so it is wasmtime's stack limit that stops it.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX { depth } else { recurse(depth + 1).wrapping_add(1) }
}

fn probe(what: &str, argument: &str) -> Option<String> {
    Some(match what {
        "count" => INVOCATIONS.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        "grow" => {
            let mb: usize = argument.parse().unwrap_or(1);
            let kept: &'static mut [u8] = Vec::leak(vec![1u8; mb << 20]);
            format!("kept {} MB", std::hint::black_box(kept).len() >> 20)
        }
        "env" => {
            let vars: Vec<String> = wasip2::cli::environment::get_environment().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            if vars.is_empty() { "empty".into() } else { vars.join(",") }
        }
        "read" => match open(argument, false) {
            Ok(file) => read_all(&file),
            Err(error) => format!("denied: {error}"),
        },
        "write" => match open(argument, true) {
            Ok(file) => match file.write(b"written by hostile\n", 0) {
                Ok(n) => format!("wrote {n} bytes"),
                Err(code) => format!("denied: {}", code.name()),
            },
            Err(error) => format!("denied: {error}"),
        },
        "read-at" => {
            let (dir, relative) = argument.split_once(' ').unwrap_or((argument, ""));
            let preopens = wasip2::filesystem::preopens::get_directories();
            match preopens.iter().find(|(_, path)| path == dir) {
                None => format!("denied: no preopened directory {dir}"),
                Some((descriptor, _)) => {
                    match descriptor.open_at(PathFlags::empty(), relative, OpenFlags::empty(), DescriptorFlags::READ) {
                        Ok(file) => read_all(&file),
                        Err(code) => format!("denied: {}", code.name()),
                    }
                }
            }
        }
        "http" => http_get(argument),
        "header" => match wasip2::http::types::Fields::new().append(argument, b"from the guest") {
            Ok(()) => "allowed".into(),
            Err(error) => format!("refused: {error:?}"),
        },
        "tcp" => tcp_connect(argument),
        "put" => match streams::put_record(argument, "hostile", b"from hostile") {
            Ok(result) => format!("put on {} at {}", result.shard_id, result.sequence_number),
            Err(error) => format!("error: {error:?}"),
        },
        "kv" => kv_round_trip(argument),
        _ => return None,
    })
}

/// Opens an absolute path through the preopen that holds it, as wasi-libc would.
fn open(path: &str, write: bool) -> Result<Descriptor, String> {
    let preopens = wasip2::filesystem::preopens::get_directories();
    let Some((dir, relative)) = preopens.iter().find_map(|(descriptor, root)| {
        let rest = path.strip_prefix(root.as_str())?;
        (rest.is_empty() || rest.starts_with('/') || root.ends_with('/')).then(|| (descriptor, rest.trim_start_matches('/')))
    }) else {
        return Err(format!("no preopened directory holds {path}"));
    };
    let (open_flags, flags) = if write {
        (OpenFlags::CREATE | OpenFlags::TRUNCATE, DescriptorFlags::WRITE)
    } else {
        (OpenFlags::empty(), DescriptorFlags::READ)
    };
    dir.open_at(PathFlags::empty(), relative, open_flags, flags).map_err(|code| code.name().to_owned())
}

fn read_all(file: &Descriptor) -> String {
    match file.read(4096, 0) {
        Ok((bytes, _)) => format!("read {:?}", String::from_utf8_lossy(&bytes).lines().next().unwrap_or("")),
        Err(code) => format!("denied: {}", code.name()),
    }
}

fn http_get(url: &str) -> String {
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return format!("error: not an http(s) URL: {url}"),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let future = match wasip2::http::outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return format!("error: {code:?}"),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => format!("status {}", response.status()),
        Some(Ok(Err(code))) => format!("error: {code:?}"),
        Some(Err(())) | None => "error: no response".into(),
    }
}

fn tcp_connect(address: &str) -> String {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let Some((ip, port)) = address.split_once(':') else { return format!("error: not IP:PORT: {address}") };
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    let (Ok(port), [a, b, c, d]) = (port.parse::<u16>(), octets.as_slice()) else {
        return format!("error: not an IPv4 address and port: {address}");
    };
    let network = wasip2::sockets::instance_network::instance_network();
    let socket = match wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Ok(socket) => socket,
        Err(code) => return format!("denied: {}", code.name()),
    };
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (*a, *b, *c, *d) });
    if let Err(code) = socket.start_connect(&network, remote) {
        return format!("denied: {}", code.name());
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "connected".into(),
        Err(code) => format!("denied: {}", code.name()),
    }
}

fn kv_round_trip(table: &str) -> String {
    let step = || -> Result<String, eddy_guest::capability::Error> {
        kv::set(table, "hostile", b"one")?;
        let read = kv::get(table, "hostile")?;
        let swapped = kv::compare_and_set(table, "hostile", Some(b"one"), b"two")?;
        let stale = kv::compare_and_set(table, "hostile", Some(b"one"), b"three")?;
        let last = kv::get(table, "hostile")?;
        Ok(format!(
            "read {:?}, swapped {swapped}, stale swap {stale}, now {:?}",
            read.map(|v| String::from_utf8_lossy(&v).into_owned()),
            last.map(|v| String::from_utf8_lossy(&v).into_owned())
        ))
    };
    step().unwrap_or_else(|error| format!("error: {error:?}"))
}

eddy_guest::export_typed_handler!(Hostile);
