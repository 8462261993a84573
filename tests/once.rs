//! The SDKs' idempotency helpers (Rust, JavaScript, Python) across a batch
//! delivered again: each `once` example forwards its records to the stream
//! `delivered`, fails its first delivery midway (a Rust trap, a JS or Python
//! exception, right after forwarding a record), and the host delivers the
//! batch again. Every record must reach `delivered` exactly once, in order.

use std::collections::BTreeMap;

use eddy_tests::*;

const ROLE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:Describe*", "kinesis:ListShards"], "Resource": "*"},
    {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "arn:aws:kinesis:local:000000000000:stream/delivered"},
    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
     "Resource": ["arn:aws:dynamodb:local:*:table/processed-*", "arn:aws:dynamodb:local:*:table/once-demo"]}
  ]
}"#;

#[test]
fn each_sdks_idempotency_helper_forwards_every_record_once_across_a_batch_delivered_again() {
    let ws = Workspace::new();
    ws.write_role("once-role", ROLE);
    ws.create_stream("delivered", 1);
    ws.deploy("delivered", "inspect", &manifest("delivered", ""));
    let functions = ["once", "js-once", "python-once"];
    for name in functions {
        ws.create_stream(&format!("{name}-in"), 1);
        ws.deploy(name, name, &format!("Role = \"once-role\"\n{}", manifest(&format!("{name}-in"), "BatchSize = 10\nMaximumBatchingWindowInSeconds = 1")));
    }
    let host = Host::start(&ws);
    for name in functions {
        host.wait_state(name, "running");
    }
    let texts: Vec<String> = ["r0", "r1", "r2", "crash", "r4", "r5"].map(String::from).to_vec();
    for name in functions {
        host.put(&format!("{name}-in"), name, &texts);
    }

    // What reached `delivered`, per function (its partition key).
    let delivered = || {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for h in eddy_tests::kinesis::handled(&host, "delivered") {
            by_key.entry(h.key).or_default().push(h.text);
        }
        by_key
    };
    wait_for("every function's records delivered", || {
        let d = delivered();
        functions.iter().all(|f| d.get(*f).is_some_and(|t| t.len() >= texts.len())).then_some(())
    });
    for name in functions {
        wait_for(&format!("{name}'s second delivery"), || {
            host.handler_messages(name)
                .iter()
                .any(|m| m == &format!("{name}: forwarded 2, skipped 4 already done"))
                .then_some(())
        });
        let status = host.function(name).expect("status");
        assert!(status["shards"][0]["failed_invocations"].as_u64() >= Some(1), "{name} failed once: {status}");
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let d = delivered();
    for name in functions {
        assert_eq!(d.get(name), Some(&texts), "{name}: every record once, in order");
    }
}
