//! Operating the host: `eddy run --check`, and the config file under flags and
//! environment variables.

use eddy_tests::browser::rendered_page;
use eddy_tests::*;

fn run_check(ws: &Workspace) -> (bool, String) {
    let out = eddy(&["run", "--check", "--functions", "functions", "--data-dir", ".eddy"], ws.path());
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn check_reports_every_function_and_role_and_fails_on_any_problem() {
    let ws = Workspace::new();
    ws.deploy("good", "inspect", &manifest("s", ""));
    ws.deploy("broken", "inspect", &manifest("s", "BatchSize = 0"));
    ws.deploy("locked", "inspect", &format!("Role = \"reader\"\n{}", manifest("s", "")));
    ws.write_role("reader", r#"{"Statement":[{"Effect":"Allow","Action":"kinesis:Describe*","Resource":"*"}]}"#);
    ws.write_role("junk", r#"{"Statement":[{"Effect":"Allow"}]}"#);
    std::fs::write(ws.functions().join("garbage.wasm"), b"not wasm").expect("write");
    std::fs::write(ws.functions().join("garbage.toml"), manifest("s", "")).expect("write");

    let (ok, out) = run_check(&ws);
    assert!(!ok, "{out}");
    let line = |subject: &str| out.lines().find(|l| l.contains(&format!(" {subject}:"))).unwrap_or_default().to_owned();
    assert!(line("functions/good").starts_with("ok"), "{out}");
    assert!(line("functions/good").contains("eddy:handler/json-handler@0.1.0, role good-source-only"), "{out}");
    assert!(line("functions/broken").starts_with("FAIL") && line("functions/broken").contains("BatchSize"), "{out}");
    assert!(
        line("functions/locked").starts_with("FAIL")
            && line("functions/locked").contains("is not authorized to perform: kinesis:GetRecords on resource: arn:aws:kinesis:local:000000000000:stream/s"),
        "{out}"
    );
    assert!(line("functions/garbage").starts_with("FAIL") && line("functions/garbage").contains("not a WebAssembly file"), "{out}");
    assert!(line("roles/junk.json").starts_with("FAIL") && line("roles/junk.json").contains("Action"), "{out}");
    assert!(line("roles/reader.json").starts_with("ok"), "{out}");
    assert!(out.contains("6 checked, 4 with problems"), "{out}");

    for name in ["broken", "locked", "garbage"] {
        ws.remove(name);
    }
    std::fs::remove_file(ws.functions().join("roles/junk.json")).expect("remove");
    let (ok, out) = run_check(&ws);
    assert!(ok, "{out}");
    assert!(out.contains("2 checked, 0 with problems"), "{out}");
}

#[test]
fn the_config_file_sets_what_flags_and_environment_leave_unset() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path().join("from-file")).expect("dir");
    std::fs::create_dir_all(ws.path().join("from-env")).expect("dir");
    // scan-ms in the file is ten minutes: the flag the test host passes (50 ms)
    // must win, or nothing would load in time.
    std::fs::write(
        ws.path().join("eddy.toml"),
        "functions = \"from-file\"\ndata-dir = \"store\"\nscan-ms = 600000\nlog = \"info\"\n",
    )
    .expect("config");
    let manifest_text = manifest("s", "");
    let component = std::fs::read(component("inspect")).expect("component");
    for dir in ["from-file", "from-env"] {
        std::fs::write(ws.path().join(dir).join(format!("{dir}.toml")), &manifest_text).expect("manifest");
        std::fs::write(ws.path().join(dir).join(format!("{dir}.wasm")), &component).expect("component");
    }

    let host = Host::start_with(&ws, &["--config", "eddy.toml"]);
    host.wait_state("from-file", "running");
    host.put("s", "k", &["via the file".to_owned()]);
    wait_for("the record", || host.handler_messages("from-file").iter().any(|m| m.contains("via the file")).then_some(()));
    assert!(ws.path().join("store/eddy.db").exists(), "data-dir came from the file");
    assert!(host.function("from-env").is_none());
    drop(host);

    // An environment variable wins over the file.
    let host = Host::start_with_env(&ws, &["--config", "eddy.toml"], &[("EDDY_FUNCTIONS", "from-env")]);
    host.wait_state("from-env", "running");
    assert!(host.function("from-file").is_none());

    // The cluster keys reach the host too (`--check` prints them); the flag wins.
    std::fs::write(ws.path().join("cluster.toml"), "functions = \"from-file\"\nlease-table = \"eddy-leases\"\nfailover-ms = 4000\n")
        .expect("config");
    let out = eddy(&["run", "--config", "cluster.toml", "--failover-ms", "5000", "--check"], ws.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cluster: lease table eddy-leases, failover 5000 ms"), "{stdout}");

    // A bad file stops the host before it starts, naming the key.
    std::fs::write(ws.path().join("bad.toml"), "scan_ms = 5\n").expect("config");
    let out = eddy(&["run", "--config", "bad.toml"], ws.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("scan_ms"), "{stderr}");
}

fn readyz(host: &Host) -> (u16, String) {
    let mut response = ureq::get(&format!("http://{}/readyz", host.admin))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .expect("readyz answers");
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn readyz_waits_for_every_function_to_load_and_reach_its_source() {
    let ws = Workspace::with_function("s", 1, "good", "inspect", "");
    // A Kinesis source on a port where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    ws.deploy(
        "unreachable",
        "inspect",
        &format!("[EventSource]\nType = \"Kinesis\"\nStream = \"nowhere\"\nEndpointUrl = \"http://127.0.0.1:{closed}\"\n"),
    );
    let host = Host::start(&ws);
    host.wait_state("good", "running");
    let (code, body) = wait_for("the unreachable source to be reported", || {
        let (code, body) = readyz(&host);
        body.contains("unreachable: its source is not reached yet").then_some((code, body))
    });
    assert_eq!(code, 503, "{body}");
    assert!(!body.contains("good"), "the good function is ready: {body}");
    let healthz = ureq::get(&format!("http://{}/healthz", host.admin)).call().expect("healthz");
    assert_eq!(healthz.status().as_u16(), 200, "alive all the same");

    ws.remove("unreachable");
    wait_for("ready", || (readyz(&host).0 == 200).then_some(()));

    // A function that fails to load makes the host not ready, naming it.
    std::fs::write(ws.functions().join("broken.toml"), "not a manifest").expect("write");
    std::fs::write(ws.functions().join("broken.wasm"), b"\0asm").expect("write");
    let body = wait_for("the failure", || {
        let (code, body) = readyz(&host);
        (code == 503 && body.contains("broken: failed")).then_some(body)
    });
    assert!(body.contains("broken.toml"), "{body}");
}

#[test]
fn the_deploy_files_use_flags_and_keys_the_binary_has() {
    let deploy = repo_root().join("deploy");
    let help = eddy(&["run", "--help"], &deploy);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for file in ["Dockerfile", "eddy.service"] {
        let text = std::fs::read_to_string(deploy.join(file)).expect("deploy file");
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("eddy\", \"run\"") || l.starts_with("Exec")).collect();
        assert!(!lines.is_empty(), "{file} runs eddy");
        for line in lines {
            for flag in line.split(|c: char| c.is_whitespace() || c == '"' || c == ',').filter(|w| w.starts_with("--")) {
                assert!(help.contains(flag), "{file} uses {flag}, which `eddy run` does not have");
            }
        }
    }
    // The config file parses as the binary reads it (with its folders moved
    // somewhere writable).
    let ws = Workspace::new();
    let out = eddy(
        &["run", "--config", deploy.join("eddy.toml").to_str().expect("utf-8"), "--functions", "functions", "--data-dir", ".eddy", "--check"],
        ws.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("admin 0.0.0.0:8700"), "the file's admin address: {stdout}");
}

fn refreshes(dom: &str) -> u32 {
    dom.split("data-refreshes=\"").nth(1).and_then(|rest| rest.split('"').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn the_status_page_shows_the_functions_in_chromium_and_updates() {
    let ws = Workspace::with_function("s", 1, "good", "inspect", "");
    ws.deploy("broken", "inspect", &manifest("t", "BatchSize = 0"));
    let host = Host::start(&ws);
    host.wait_state("good", "running");
    host.wait_state("broken", "failed");
    host.put("s", "k", &["a".to_owned(), "b".to_owned(), "c".to_owned()]);
    wait_for("the records", || host.function("good").filter(|f| shard_total(f, "records_processed") == 3));

    let dom = rendered_page(&host, 5000);
    assert!(dom.contains(r#"<tr data-function="good">"#), "{dom}");
    assert!(dom.contains(r#"data-field="state">running<"#), "{dom}");
    assert!(dom.contains(r#"data-field="records">3<"#), "{dom}");
    assert!(dom.contains(r#"data-last-processing-result="OK""#), "Lambda's LastProcessingResult under the state: {dom}");
    assert!(dom.contains(r#"data-field="state">failed<"#) && dom.contains("BatchSize = 0 is out of range"), "the broken function and its error: {dom}");
    assert!(dom.matches("<polyline").count() >= 6, "three charts per function: {dom}");
    assert!(refreshes(&dom) >= 2, "the page refreshed itself: {dom}");

    // It updates: two more records show up on the next rendering.
    host.put("s", "k", &["d".to_owned(), "e".to_owned()]);
    wait_for("the records", || host.function("good").filter(|f| shard_total(f, "records_processed") == 5));
    let dom = rendered_page(&host, 3000);
    assert!(dom.contains(r#"data-field="records">5<"#), "{dom}");
    // The charts' history: samples every 2 s, each with every function's counters.
    // (Waited for: the last sample may have been taken before the records.)
    let sample = wait_for("a sample with the function's five records", || {
        let history = get_json(&format!("http://{}/status/history", host.admin));
        history["samples"].as_array()?.last().filter(|s| s["functions"]["good"]["records_processed"] == 5).cloned()
    });
    assert!(sample["functions"]["good"]["invocations"].as_u64() >= Some(2), "{sample}");
}
