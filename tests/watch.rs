//! `eddy watch`: a handler project rebuilt on every save and swapped into a
//! running host live, the checkpoint kept; a build that fails is shown and the
//! running version keeps running. (A C project: its toolchain builds in a
//! second or two.)

use std::process::{Child, Command, Stdio};

use eddy_tests::*;

/// `eddy watch`, killed when dropped.
struct Watching {
    child: Child,
    log: std::path::PathBuf,
}

impl Watching {
    fn start(ws: &Workspace, host: &Host, project: &str) -> Watching {
        let log = ws.path().join("watch.log");
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(eddy_bin())
            .args(["watch", project, "--out", "functions", "--admin", &host.admin])
            .current_dir(ws.path())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("eddy watch starts");
        Watching { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `text` appears `times` times in the output.
    fn wait_for(&self, text: &str, times: usize) {
        wait_for(&format!("{text:?} {times} times in eddy watch's output"), || {
            (self.output().matches(text).count() >= times).then_some(())
        });
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn eddy_watch_swaps_each_good_build_in_live_and_a_broken_one_changes_nothing() {
    let ws = Workspace::new();
    assert!(eddy(&["new", "orders", "--lang", "c"], ws.path()).status.success());
    let host = Host::start(&ws);
    let watching = Watching::start(&ws, &host, "orders");
    const RUNS_NEW: &str = "orders: the host runs the new version";
    watching.wait_for(RUNS_NEW, 1);
    host.wait_state("orders", "running");
    host.put("orders-input", "k", &[r#"{"amount": 2}"#.to_owned()]);
    wait_for("the first version's line", || {
        host.handler_messages("orders").iter().any(|m| m == "orders: 1 records, 0 failed; total 2").then_some(())
    });
    let first_digest = host.function("orders").expect("status")["digest"].clone();

    // A save: rebuilt, swapped in, and reading goes on from the checkpoint.
    let handler = ws.path().join("orders/handler.c");
    let source = std::fs::read_to_string(&handler).expect("handler.c");
    let edited = source.replace("%zu records, %zu failed", "%zu sales, %zu failed");
    assert_ne!(edited, source, "the template's log line changed");
    std::fs::write(&handler, &edited).expect("save");
    watching.wait_for(RUNS_NEW, 2);
    let second_digest = host.function("orders").expect("status")["digest"].clone();
    assert_ne!(second_digest, first_digest);
    host.put("orders-input", "k", &[r#"{"amount": 3}"#.to_owned()]);
    wait_for("the new version's line", || {
        host.handler_messages("orders").iter().any(|m| m == "orders: 1 sales, 0 failed; total 3").then_some(())
    });
    let messages = host.handler_messages("orders");
    assert_eq!(messages.iter().filter(|m| m.ends_with("total 2")).count(), 1, "the checkpoint was kept: {messages:?}");

    // A broken save: the error is shown, the running version keeps running.
    std::fs::write(&handler, format!("{edited}\nthis is not C;\n")).expect("save");
    watching.wait_for("build failed", 1);
    let out = watching.output();
    assert!(out.contains("error:"), "the compiler's error is shown: {out}");
    assert!(out.contains("the version running before (if any) keeps running"), "{out}");
    host.put("orders-input", "k", &[r#"{"amount": 4}"#.to_owned()]);
    wait_for("the running version to go on", || {
        host.handler_messages("orders").iter().any(|m| m == "orders: 1 sales, 0 failed; total 4").then_some(())
    });
    assert_eq!(host.function("orders").expect("status")["digest"], second_digest);

    // Mended: built and swapped in again.
    std::fs::write(&handler, &source).expect("save");
    watching.wait_for(RUNS_NEW, 3);
    host.put("orders-input", "k", &[r#"{"amount": 5}"#.to_owned()]);
    wait_for("the mended version's line", || {
        host.handler_messages("orders").iter().any(|m| m == "orders: 1 records, 0 failed; total 5").then_some(())
    });
}
