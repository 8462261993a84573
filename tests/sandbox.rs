//! The sandbox against hostile handlers (`examples/hostile`), each beside a
//! healthy function that must keep processing its stream throughout: limits
//! (stack, response size, log flood), and every capability an execution role
//! grants or denies (files, environment, HTTP, sockets, streams, tables), with the
//! error the guest sees, the audit line, and the metric.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_tests::*;
use serde_json::Value;

fn healthy_count(host: &Host) -> usize {
    host.handler_messages("healthy").iter().filter(|m| m.contains("] n-")).count()
}

/// Puts `count` records on the healthy function's stream, a few at a time, while
/// the hostile ones run; returns how many it put.
fn feed_healthy(host: &Host, count: usize) -> usize {
    for i in 0..count {
        host.put("s", "k", &[format!("n-{i}")]);
        std::thread::sleep(Duration::from_millis(40));
    }
    count
}


#[test]
fn stack_overflow_huge_responses_and_log_floods_fail_alone() {
    let ws = Workspace::new();
    for stream in ["s", "recurse", "big", "flood"] {
        ws.create_stream(stream, 1);
    }
    ws.deploy("healthy", "inspect", &manifest("s", ""));
    ws.deploy("recurse", "hostile", &manifest("recurse", "MaximumRetryAttempts = 0"));
    ws.deploy("big", "hostile", &format!("MemorySize = 256\n{}", manifest("big", "MaximumRetryAttempts = 0")));
    ws.deploy("flood", "hostile", &format!("LogLimitBytes = 65536\n{}", manifest("flood", "MaximumRetryAttempts = 0")));
    let host = Host::start(&ws);
    for name in ["healthy", "recurse", "big", "flood"] {
        host.wait_state(name, "running");
    }
    host.put("recurse", "k", &["recurse".to_owned()]);
    host.put("big", "k", &["big-response".to_owned()]);
    host.put("flood", "k", &["log-flood".to_owned()]);
    let fed = feed_healthy(&host, 20);
    wait_for("the healthy function's records", || (healthy_count(&host) == fed).then_some(()));

    for (name, kind, says) in [
        ("recurse", "trap", "call stack exhausted"),
        ("big", "response_too_large", "over the limit of 6 MB"),
        ("flood", "log_limit", "log limit of 65536 bytes"),
    ] {
        let f = wait_for(&format!("{name} to give up"), || {
            host.function(name).filter(|f| shard_total(f, "records_discarded") == 1)
        });
        let shard = &f["shards"][0];
        assert_eq!(shard["errors_by_kind"][kind], 1, "{name} failed with {kind}: {f}");
        let error = shard["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{name}: the error names the limit ({says}): {error}");
        assert_eq!(f["state"], "running", "{name} is still up for its next records");
    }
    // The flood was cut off near its limit: 1000-byte lines, 64 KiB.
    let flooded = host.handler_messages("flood").len();
    assert!((60..=66).contains(&flooded), "{flooded} lines of the flood were logged");
    let metrics = host.metrics();
    assert!(metrics.contains(r#"eddy_function_errors_total{function="big",shard="shardId-000000000000",kind="response_too_large"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"eddy_function_errors_total{function="flood",shard="shardId-000000000000",kind="log_limit"} 1"#), "{metrics}");
}

/// A minimal HTTP server on 127.0.0.1 that answers 200 to everything and
/// remembers the paths it was asked for.
fn http_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&paths);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            if let Some(path) = request_line.split_whitespace().nth(1) {
                seen.lock().expect("lock").push(path.to_owned());
            }
            let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, paths)
}

/// The outcome the prober logged for a probe.
fn outcome(host: &Host, probe: &str) -> String {
    let prefix = format!("probe {probe}: ");
    host.handler_messages("prober")
        .iter()
        .filter_map(|m| m.split_once("] ").map_or(m.as_str(), |(_, rest)| rest).strip_prefix(&prefix).map(str::to_owned))
        .next()
        .unwrap_or_else(|| panic!("no outcome for {probe:?}"))
}

#[test]
fn a_role_grants_exactly_what_it_names() {
    let ws = Workspace::new();
    for stream in ["s", "probes", "granted-out", "other-out"] {
        ws.create_stream(stream, 1);
    }
    let (http_port, http_paths) = http_server();
    let (tcp_port, _) = http_server();
    let (closed_port, closed_paths) = http_server();
    let sandbox = ws.path().join("sandbox");
    std::fs::create_dir_all(sandbox.join("in")).expect("in dir");
    std::fs::create_dir_all(sandbox.join("out")).expect("out dir");
    std::fs::write(sandbox.join("in/data.txt"), "inside the grant\n").expect("data");
    std::fs::write(sandbox.join("secret.txt"), "outside the grant\n").expect("secret");
    let root = sandbox.display().to_string();
    ws.write_role(
        "prober-role",
        &format!(
            r#"{{
              "Version": "2012-10-17",
              "Statement": [
                {{"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:ListShards"], "Resource": "*"}},
                {{"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "arn:aws:kinesis:local:000000000000:stream/granted-*"}},
                {{"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": "arn:aws:dynamodb:local:*:table/granted-table"}},
                {{"Effect": "Allow", "Action": "eddy:HttpRequest", "Resource": "http://127.0.0.1:{http_port}/allowed/*"}},
                {{"Effect": "Allow", "Action": "eddy:ReadFile", "Resource": "{root}/in/*"}},
                {{"Effect": "Allow", "Action": "eddy:WriteFile", "Resource": "{root}/out/*"}},
                {{"Effect": "Allow", "Action": "eddy:Connect", "Resource": "127.0.0.1:{tcp_port}"}}
              ]
            }}"#
        ),
    );
    ws.deploy("healthy", "inspect", &manifest("s", ""));
    ws.deploy("out-reader", "inspect", &manifest("granted-out", ""));
    ws.deploy(
        "prober",
        "hostile",
        &format!("Role = \"prober-role\"\n[Environment.Variables]\nGREETING = \"hi\"\n{}", manifest("probes", "")),
    );
    let host = Host::start_with_env(&ws, &[], &[("EDDY_TEST_SECRET", "host-only")]);
    host.wait_state("healthy", "running");
    host.wait_state("prober", "running");

    let probes: Vec<String> = [
        "env".to_owned(),
        "read /etc/passwd".to_owned(),
        format!("read {root}/in/data.txt"),
        format!("read {root}/secret.txt"),
        format!("write {root}/in/new.txt"),
        format!("write {root}/out/new.txt"),
        format!("read-at {root}/in ../secret.txt"),
        format!("http http://127.0.0.1:{http_port}/allowed/x"),
        format!("http http://127.0.0.1:{closed_port}/secret"),
        "header proxy-authorization".to_owned(),
        "header authorization".to_owned(),
        format!("tcp 127.0.0.1:{tcp_port}"),
        format!("tcp 127.0.0.1:{closed_port}"),
        "put granted-out".to_owned(),
        "put other-out".to_owned(),
        "kv granted-table".to_owned(),
        "kv other-table".to_owned(),
    ]
    .to_vec();
    host.put("probes", "k", &probes);
    let fed = feed_healthy(&host, 20);
    wait_for("the healthy function's records", || (healthy_count(&host) == fed).then_some(()));
    wait_for("every probe", || {
        let n = host.handler_messages("prober").iter().filter(|m| m.contains("probe ")).count();
        (n == probes.len()).then_some(())
    });
    let all = host.handler_messages("prober");
    let by_probe = |p: &str| -> Vec<String> {
        all.iter().filter(|m| m.contains(&format!("probe {p}: "))).cloned().collect()
    };

    // Environment: the manifest's variables only.
    assert_eq!(outcome(&host, "env"), "GREETING=hi");
    // Files: the granted directories only, with their access.
    let reads = by_probe("read");
    assert!(reads[0].contains("denied: no preopened directory holds /etc/passwd"), "{reads:?}");
    assert!(reads[1].contains(r#"read "inside the grant""#), "{reads:?}");
    assert!(reads[2].contains("denied: no preopened directory"), "{reads:?}");
    let writes = by_probe("write");
    assert!(writes[0].ends_with("denied: not-permitted"), "the read-only grant refuses writes: {writes:?}");
    assert!(writes[1].contains("wrote 19 bytes"), "{writes:?}");
    assert_eq!(std::fs::read_to_string(sandbox.join("out/new.txt")).expect("written"), "written by hostile\n");
    assert!(!sandbox.join("in/new.txt").exists());
    assert!(outcome(&host, "read-at").ends_with("denied: not-permitted"), "`..` cannot leave a preopen: {all:?}");
    // HTTP: the granted URL pattern only; the denied request never left.
    let https = by_probe("http");
    assert!(https[0].ends_with("status 200"), "{https:?}");
    assert!(https[1].ends_with("error: ErrorCode::HttpRequestDenied"), "{https:?}");
    assert_eq!(*http_paths.lock().expect("lock"), vec!["/allowed/x".to_owned()]);
    // Headers: the guest's own credentials go; the proxy's and hop-by-hop ones do not.
    let headers = by_probe("header");
    assert!(headers[0].ends_with("refused: HeaderError::Forbidden"), "{headers:?}");
    assert!(headers[1].ends_with("allowed"), "{headers:?}");
    // Sockets: the granted address only.
    let tcps = by_probe("tcp");
    assert!(tcps[0].ends_with("connected"), "{tcps:?}");
    assert!(tcps[1].ends_with("denied: access-denied"), "{tcps:?}");
    assert!(closed_paths.lock().expect("lock").is_empty());
    // Streams and tables: granted ones work, others answer IAM's words.
    let puts = by_probe("put");
    assert!(puts[0].contains("put on shardId-000000000000 at 1"), "{puts:?}");
    assert!(
        puts[1].contains(
            "AccessDenied(\"User: arn:aws:sts::000000000000:assumed-role/prober-role/prober is not authorized to perform: \
             kinesis:PutRecord on resource: arn:aws:kinesis:local:000000000000:stream/other-out because no \
             identity-based policy allows the action\")"
        ),
        "{puts:?}"
    );
    let kvs = by_probe("kv");
    assert!(kvs[0].ends_with(r#"read Some("one"), swapped true, stale swap false, now Some("two")"#), "{kvs:?}");
    assert!(kvs[1].contains("AccessDenied") && kvs[1].contains("dynamodb:PutItem on resource: arn:aws:dynamodb:local:000000000000:table/other-table"), "{kvs:?}");

    // One audit line per denial, naming function, action and resource; a metric per action.
    let audit = lines_of(&host.lines(), "audit");
    let denied: Vec<(String, String)> = audit
        .iter()
        .filter(|l| l["fields"]["function"] == "prober")
        .map(|l| {
            let field = |k: &str| l["fields"][k].as_str().unwrap_or_default().to_owned();
            (field("action"), field("resource"))
        })
        .collect();
    assert_eq!(
        denied,
        vec![
            ("eddy:HttpRequest".to_owned(), format!("http://127.0.0.1:{closed_port}/secret")),
            ("eddy:Connect".to_owned(), format!("127.0.0.1:{closed_port}")),
            ("kinesis:PutRecord".to_owned(), "arn:aws:kinesis:local:000000000000:stream/other-out".to_owned()),
            ("dynamodb:PutItem".to_owned(), "arn:aws:dynamodb:local:000000000000:table/other-table".to_owned()),
        ],
        "{audit:?}"
    );
    let metrics = host.metrics();
    for action in ["eddy:HttpRequest", "eddy:Connect", "kinesis:PutRecord", "dynamodb:PutItem"] {
        assert!(
            metrics.contains(&format!("eddy_access_denied_total{{function=\"prober\",action=\"{action}\"}} 1")),
            "{action}: {metrics}"
        );
    }
    let status = host.function("prober").expect("prober");
    assert_eq!(status["role"], "prober-role");
    assert_eq!(status["access_denied"]["kinesis:PutRecord"], 1, "{status}");
    assert_eq!(shard_total(&status, "failed_invocations"), 0, "denials are errors for the guest, not failures: {status}");
    let printed = eddy(&["status", "--admin", &host.admin], ws.path());
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("role prober-role"), "{printed}");
    assert!(printed.contains("access denied: dynamodb:PutItem 1, eddy:Connect 1, eddy:HttpRequest 1, kinesis:PutRecord 1"), "{printed}");

    // The record the granted put wrote is on its stream, for its reader.
    wait_for("the put record", || {
        host.handler_messages("out-reader").iter().any(|m| m.contains("from hostile")).then_some(())
    });
}

#[test]
fn a_role_that_cannot_read_the_source_stops_the_mapping_until_it_can() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.create_stream("locked", 1);
    let reader = |actions: &str| {
        format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{actions}],"Resource":"arn:aws:kinesis:local:000000000000:stream/locked"}}]}}"#)
    };
    ws.write_role("half-reader", &reader(r#""kinesis:DescribeStream","kinesis:DescribeStreamSummary","kinesis:ListShards""#));
    ws.deploy("healthy", "inspect", &manifest("s", ""));
    ws.deploy("locked", "inspect", &format!("Role = \"half-reader\"\n{}", manifest("locked", "")));
    let host = Host::start(&ws);
    host.wait_state("healthy", "running");
    host.put("locked", "k", &["l-1".to_owned()]);
    let f = host.wait_state("locked", "failed");
    let error = f["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "the execution role cannot read the event source: User: arn:aws:sts::000000000000:assumed-role/half-reader/locked \
             is not authorized to perform: kinesis:GetRecords on resource: arn:aws:kinesis:local:000000000000:stream/locked"
        ),
        "{error}"
    );
    let audit = lines_of(&host.lines(), "audit");
    assert!(audit.iter().any(|l| l["fields"]["function"] == "locked" && l["fields"]["action"] == "kinesis:GetRecords"), "{audit:?}");
    let fed = feed_healthy(&host, 5);
    wait_for("the healthy function's records", || (healthy_count(&host) == fed).then_some(()));
    assert!(host.handler_messages("locked").is_empty(), "no record was read");

    // The role fixed in place: the function starts, as after a module change.
    ws.write_role("half-reader", &reader(r#""kinesis:Describe*","kinesis:ListShards","kinesis:Get*""#));
    host.wait_state("locked", "running");
    wait_for("the record", || host.handler_messages("locked").iter().any(|m| m.contains("l-1")).then_some(()));
    let value: Value = host.function("locked").expect("locked");
    assert!(value["error"].is_null(), "{value}");
}

#[test]
fn a_manifest_naming_a_missing_or_broken_role_is_refused() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.deploy("f", "inspect", &format!("Role = \"nobody\"\n{}", manifest("s", "")));
    let host = Host::start(&ws);
    let f = host.wait_state("f", "failed");
    assert!(f["error"].as_str().unwrap_or_default().contains("roles/nobody.json"), "{f}");
    ws.write_role("nobody", r#"{"Statement":[{"Effect":"Allow","Action":"PutRecord","Resource":"*"}]}"#);
    let f = wait_for("the policy error", || {
        host.function("f").filter(|f| f["error"].as_str().is_some_and(|e| e.contains("service:Action")))
    });
    assert!(f["error"].as_str().unwrap_or_default().contains("roles/nobody.json"), "{f}");
    ws.write_role("nobody", r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}"#);
    host.wait_state("f", "running");
    host.put("s", "k", &["n-1".to_owned()]);
    wait_for("the record", || host.handler_messages("f").iter().any(|m| m.contains("n-1")).then_some(()));
}

#[test]
fn a_handler_waiting_on_the_network_still_times_out() {
    // A server that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.create_stream("waits", 1);
    ws.write_role(
        "caller",
        &format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:local:*:stream/waits"}},
                {{"Effect":"Allow","Action":"eddy:HttpRequest","Resource":"http://127.0.0.1:{port}/*"}}]}}"#
        ),
    );
    ws.deploy("healthy", "inspect", &manifest("s", ""));
    ws.deploy("waiter", "hostile", &format!("Role = \"caller\"\nTimeout = 1\n{}", manifest("waits", "MaximumRetryAttempts = 0")));
    let host = Host::start(&ws);
    host.wait_state("healthy", "running");
    host.wait_state("waiter", "running");
    host.put("waits", "k", &[format!("http http://127.0.0.1:{port}/never")]);
    let fed = feed_healthy(&host, 10);
    wait_for("the healthy function's records", || (healthy_count(&host) == fed).then_some(()));
    let f = wait_for("the waiting handler to time out", || {
        host.function("waiter").filter(|f| shard_total(f, "records_discarded") == 1)
    });
    assert_eq!(f["shards"][0]["errors_by_kind"]["timeout"], 1, "{f}");
    assert!(f["shards"][0]["last_error"].as_str().unwrap_or_default().contains("timed out after 1s"), "{f}");
}

#[test]
fn a_url_grant_matches_scheme_host_port_and_path_apart_and_every_denial_is_audited() {
    let ws = Workspace::new();
    ws.create_stream("probes", 1);
    let (port, paths) = http_server();
    ws.write_role(
        "web",
        &format!(
            r#"{{"Statement": [
                {{"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:ListShards"], "Resource": "*"}},
                {{"Effect": "Allow", "Action": "eddy:HttpRequest", "Resource": "http://*.example.com/*"}},
                {{"Effect": "Allow", "Action": "eddy:HttpRequest", "Resource": "http://127.0.0.1:{port}/ok/*"}}
            ]}}"#
        ),
    );
    ws.deploy("prober", "hostile", &format!("Role = \"web\"\n{}", manifest("probes", "")));
    let host = Host::start(&ws);
    host.wait_state("prober", "running");
    let bypasses = [
        format!("http://127.0.0.1:{port}/.example.com/anything"),
        format!("http://x.example.com@127.0.0.1:{port}/userinfo"),
        format!("http://127.0.0.1:{port}/ok/%2e%2e/dotdot"),
        format!("http://127.0.0.1:{port}/ok/../dotdot2"),
        format!("http://[::1]:{port}/.example.com/v6"),
    ];
    let mut probes: Vec<String> = bypasses.iter().map(|url| format!("http {url}")).collect();
    probes.push(format!("http http://127.0.0.1:{port}/ok/granted"));
    host.put("probes", "k", &probes);
    wait_for("every probe", || {
        let n = host.handler_messages("prober").iter().filter(|m| m.contains("probe ")).count();
        (n == probes.len()).then_some(())
    });
    let outcomes: Vec<String> =
        host.handler_messages("prober").into_iter().filter(|m| m.contains("probe ")).collect();
    for (probe, outcome) in probes.iter().zip(&outcomes) {
        if probe.ends_with("/ok/granted") {
            assert!(outcome.ends_with("status 200"), "{probe}: {outcome}");
        } else {
            assert!(outcome.contains("error") || outcome.contains("denied"), "{probe} was not refused: {outcome}");
        }
    }
    assert_eq!(*paths.lock().expect("lock"), vec!["/ok/granted".to_owned()], "only the granted request reached the server");

    let audit = lines_of(&host.lines(), "audit");
    let actions: Vec<String> = audit.iter().filter_map(|l| l["fields"]["action"].as_str().map(str::to_owned)).collect();
    assert!(actions.iter().filter(|a| *a == "eddy:HttpRequest").count() >= 4, "{audit:?}");
}

#[test]
fn a_connection_by_a_role_without_any_connect_grant_is_audited() {
    let ws = Workspace::new();
    ws.create_stream("probes", 1);
    let (port, _) = http_server();
    ws.write_role(
        "no-net",
        r#"{"Statement": [{"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:ListShards"], "Resource": "*"}]}"#,
    );
    ws.deploy("prober", "hostile", &format!("Role = \"no-net\"\n{}", manifest("probes", "")));
    let host = Host::start(&ws);
    host.wait_state("prober", "running");
    host.put("probes", "k", &[format!("tcp 127.0.0.1:{port}")]);
    wait_for("the probe", || host.handler_messages("prober").iter().any(|m| m.contains("probe tcp")).then_some(()));
    assert!(outcome(&host, "tcp").starts_with("denied"), "{}", outcome(&host, "tcp"));
    let audit = lines_of(&host.lines(), "audit");
    assert!(
        audit.iter().any(|l| l["fields"]["action"] == "eddy:Connect" && l["fields"]["resource"] == format!("127.0.0.1:{port}")),
        "the refused connection is audited: {audit:?}"
    );
    assert!(host.metrics().contains("eddy_access_denied_total{function=\"prober\",action=\"eddy:Connect\"} 1"));
}
