//! A handler that uses WASI: the host links WASI 0.2 locked down, with stdout
//! captured into the log and only the manifest's environment visible.
//!
//! The component is made here from a core module written in WAT that imports
//! WASI preview1 (as `wasm32-wasip1` compilers emit), with wit-component and the
//! preview1 adapter of the host's wasmtime version, as `wasm-tools component new
//! --adapt` would.

use eddy_tests::*;

/// A JSON-world handler that writes "hello from wasi" to stdout, then the value of
/// the first environment variable it sees (or "no environment"), and answers `{}`.
const HANDLER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
;; 20 pages: the preview1 adapter takes its state (tens of KiB) from cabi_realloc.
  (memory (export "memory") 20)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 16) "hello from wasi\n")
  (data (i32.const 40) "no environment\n")
  (data (i32.const 64) "{}")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    ;; a bump allocator: align up, hand out `size` bytes
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 200) (local.get $ptr))
    (i32.store (i32.const 204) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 208))))
  (func (export "eddy:handler/json@0.1.0#handle")
        (param i32 i32 i32 i32 i32 i32 i64 i32) (result i32)
    (local $entry i32) (local $len i32)
    (call $print (i32.const 16) (i32.const 16))
    ;; environ_sizes_get(count at 300, buffer size at 304); environ_get(pointers at 400, strings at 1024)
    (drop (call $environ_sizes_get (i32.const 300) (i32.const 304)))
    (if (i32.eqz (i32.load (i32.const 300)))
      (then (call $print (i32.const 40) (i32.const 15)))
      (else
        (drop (call $environ_get (i32.const 400) (i32.const 1024)))
        ;; print the first "NAME=value" string up to its NUL, then a newline
        (local.set $entry (i32.load (i32.const 400)))
        (local.set $len (i32.const 0))
        (block $done (loop $scan
          (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $entry) (local.get $len)))))
          (local.set $len (i32.add (local.get $len) (i32.const 1)))
          (br $scan)))
        (i32.store8 (i32.add (local.get $entry) (local.get $len)) (i32.const 10))
        (call $print (local.get $entry) (i32.add (local.get $len) (i32.const 1)))))
    ;; result<string, string>: ok (tag 0), pointer and length of "{}"
    (i32.store8 (i32.const 80) (i32.const 0))
    (i32.store (i32.const 84) (i32.const 64))
    (i32.store (i32.const 88) (i32.const 2))
    (i32.const 80))
)
"#;

/// The handler as a core module with its world in a `component-type` section, as
/// wit-bindgen leaves a `wasm32-wasip1` build.
fn core_module() -> Vec<u8> {
    let mut module = wat::parse_str(HANDLER).expect("WAT");
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(repo_root().join("wit")).expect("wit/ parses");
    let world = resolve.select_world(&[package], Some("json-handler")).expect("json-handler world");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8, false)
        .expect("metadata");
    module
}

fn wasi_component() -> Vec<u8> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&core_module())
        .expect("module")
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .expect("adapter")
        .encode()
        .expect("component")
}

#[test]
fn a_wasi_handler_prints_to_the_log_and_sees_only_its_manifests_environment() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.write_manifest(
        "printer",
        &format!("[Environment.Variables]\nGREETING = \"hi there\"\n{}", manifest("s", "")),
    );
    atomic_write(&ws.functions().join("printer.wasm"), &wasi_component());
    let host = Host::start_with(&ws, &[]);
    host.wait_state("printer", "running");
    host.put("s", "k", &["x".to_owned()]);
    let stdout = wait_for("the handler's stdout in the log", || {
        let lines: Vec<String> = host
            .lines()
            .iter()
            .filter(|l| l["target"] == "handler" && l["fields"]["stream"] == "stdout" && l["fields"]["function"] == "printer")
            .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    assert_eq!(stdout[0], "hello from wasi");
    // Only the manifest's variable, not the host's environment (which has PATH).
    assert_eq!(stdout[1], "GREETING=hi there");
    // The handler's output is logged while the invocation runs; the shard's
    // counters move once it has returned, so wait for them rather than race.
    wait_for("the record counted as processed", || {
        let f = host.function("printer")?;
        (shard_total(&f, "records_processed") == 1).then_some(())
    });
}

#[test]
fn without_variables_a_wasi_handler_sees_an_empty_environment() {
    let ws = Workspace::new();
    let component = ws.path().join("printer.wasm");
    std::fs::write(&component, wasi_component()).expect("write");
    let Invoked { ok, stdout, log, .. } = invoke(&component, &fixture("kinesis-event.json"), &[]);
    assert!(ok, "{log}\n{stdout}");
    assert_eq!(stdout.trim(), "{}");
    assert!(log.contains("hello from wasi"), "{log}");
    assert!(log.contains("no environment"), "{log}");
}

#[test]
fn a_preview1_core_module_is_given_the_adapter_on_load() {
    let ws = Workspace::new();
    ws.create_stream("s", 1);
    ws.write_manifest("printer", &manifest("s", ""));
    atomic_write(&ws.functions().join("printer.wasm"), &core_module());
    let host = Host::start(&ws);
    host.wait_state("printer", "running");
    host.put("s", "k", &["x".to_owned()]);
    wait_for("the handler's stdout in the log", || {
        host.lines()
            .iter()
            .any(|l| l["fields"]["stream"] == "stdout" && l["fields"]["message"] == "hello from wasi")
            .then_some(())
    });
}

/// A WASI command in WAT, as a `wasm32-wasip1` compiler writes one: it writes
/// "command ran" to stderr, copies stdin to stdout (the event back as its
/// response), then returns, exits with status 3, or loops forever.
fn command(behaviour: &str) -> Vec<u8> {
    let tail = match behaviour {
        "echo" => "",
        "exit3" => "(call $proc_exit (i32.const 3))",
        "loop" => "(loop $forever (br $forever))",
        other => panic!("no behaviour {other}"),
    };
    wat::parse_str(format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 20)
  (data (i32.const 16) "command ran\n")
  (func (export "_start")
    (local $n i32)
    ;; stderr: "command ran"
    (i32.store (i32.const 200) (i32.const 16))
    (i32.store (i32.const 204) (i32.const 12))
    (drop (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 208)))
    ;; stdin to stdout, 64 KiB at a time, from offset 65536
    (block $eof (loop $copy
      (i32.store (i32.const 300) (i32.const 65536))
      (i32.store (i32.const 304) (i32.const 65536))
      (drop (call $fd_read (i32.const 0) (i32.const 300) (i32.const 1) (i32.const 308)))
      (local.set $n (i32.load (i32.const 308)))
      (br_if $eof (i32.eqz (local.get $n)))
      (i32.store (i32.const 304) (local.get $n))
      (drop (call $fd_write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 208)))
      (br $copy)))
    {tail})
)"#
    ))
    .expect("WAT")
}

#[test]
fn a_wasi_command_gets_the_event_on_stdin_and_answers_on_stdout_within_the_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str| {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, command(name)).expect("module");
        path
    };
    let event = fixture("kinesis-event.json");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&event).expect("event")).expect("JSON");

    let echoed = invoke(&write("echo"), &event, &[]);
    assert!(echoed.ok, "{}{}", echoed.stdout, echoed.log);
    assert_eq!(echoed.response, expected, "the response is what the command wrote: the event it read");
    assert!(echoed.log.contains("command ran"), "stderr goes to the log: {}", echoed.log);

    let failed = invoke(&write("exit3"), &event, &[]);
    assert!(!failed.ok);
    // WASI 0.2's exit carries success or failure, not the code: 3 arrives as 1.
    assert!(failed.stdout.contains("the command exited with status 1"), "{}", failed.stdout);

    let looping = invoke(&write("loop"), &event, &["--timeout", "1"]);
    assert!(!looping.ok);
    assert!(looping.stdout.contains("timed out"), "{}", looping.stdout);
}
