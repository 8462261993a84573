//! A Kinesis endpoint that forwards every call to a real emulator except the
//! ones it is told to hold: those it reads and never answers, as a service (or
//! an emulator: kinesalite does this for some GetShardIterator calls) that hangs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Stall {
    pub endpoint: String,
    held: Arc<AtomicUsize>,
}

impl Stall {
    /// Forwards to `upstream` (`http://127.0.0.1:PORT`), holding calls whose
    /// `X-Amz-Target` ends with `.{operation}`.
    pub fn start(upstream: &str, operation: &str) -> Stall {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let held = Arc::new(AtomicUsize::new(0));
        let target = format!(".{operation}");
        let counter = Arc::clone(&held);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (upstream, target, counter) = (upstream.clone(), target.clone(), Arc::clone(&counter));
                std::thread::spawn(move || serve(client, &upstream, &target, &counter));
            }
        });
        Stall { endpoint, held }
    }

    /// How many calls it has held so far.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

/// One HTTP/1.1 request: its head (as sent) and body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn serve(client: TcpStream, upstream: &str, target: &str, held: &AtomicUsize) {
    let mut writer = client.try_clone().expect("clone");
    let mut reader = BufReader::new(client);
    let Some((head, body)) = read_request(&mut reader) else { return };
    if header(&head, "x-amz-target").is_some_and(|t| t.ends_with(target)) {
        held.fetch_add(1, Ordering::SeqCst);
        // Never answer; keep the connection until the caller gives up.
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
    // Forward on a connection of its own, read to its end, and pass the answer
    // back whole (chunked or not), closing the client's connection after it.
    let Ok(mut up) = TcpStream::connect(upstream) else { return };
    let head = head.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    let mut response = Vec::new();
    let forwarded = up.write_all(head.as_bytes()).and_then(|()| up.write_all(&body)).and_then(|()| up.read_to_end(&mut response));
    if forwarded.is_err() {
        return;
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let (response_head, response_body) = response.split_at(split);
    let response_head: String = String::from_utf8_lossy(response_head)
        .lines()
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let _ = writer
        .write_all(response_head.as_bytes())
        .and_then(|()| writer.write_all(b"Connection: close\r\n\r\n"))
        .and_then(|()| writer.write_all(response_body));
}
