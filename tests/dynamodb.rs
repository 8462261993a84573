//! DynamoDB Streams sources against DynamoDB Local, started by the test: INSERT,
//! MODIFY and REMOVE with keys and images for each StreamViewType, a table named
//! by name or its stream by ARN, and the emulator stopped and restarted while the
//! host polls.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType,
};
use eddy_tests::emulators::{self, Emulator};
use eddy_tests::{Host, Workspace, wait_for};
use serde_json::Value;

struct Dynamo {
    emulator: Emulator,
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl Dynamo {
    fn start() -> Dynamo {
        let emulator = emulators::dynamodb();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        let client = Client::new(&rt.block_on(emulators::sdk_config(&emulator.endpoint)));
        Dynamo { emulator, client, rt }
    }

    /// Creates a table keyed by `id` with a stream of `view`; returns the stream ARN.
    fn create_table(&self, name: &str, view: StreamViewType) -> String {
        let out = self
            .rt
            .block_on(
                self.client
                    .create_table()
                    .table_name(name)
                    .attribute_definitions(
                        AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().expect("attr"),
                    )
                    .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().expect("key"))
                    .billing_mode(BillingMode::PayPerRequest)
                    .stream_specification(StreamSpecification::builder().stream_enabled(true).stream_view_type(view).build().expect("spec"))
                    .send(),
            )
            .expect("CreateTable");
        out.table_description().and_then(|t| t.latest_stream_arn()).expect("a stream ARN").to_owned()
    }

    fn put(&self, table: &str, id: &str, n: i64) {
        self.rt
            .block_on(
                self.client
                    .put_item()
                    .table_name(table)
                    .item("id", AttributeValue::S(id.into()))
                    .item("n", AttributeValue::N(n.to_string()))
                    .send(),
            )
            .expect("PutItem");
    }

    fn update(&self, table: &str, id: &str, n: i64) {
        self.rt
            .block_on(
                self.client
                    .update_item()
                    .table_name(table)
                    .key("id", AttributeValue::S(id.into()))
                    .update_expression("SET n = :n")
                    .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
                    .send(),
            )
            .expect("UpdateItem");
    }

    fn delete(&self, table: &str, id: &str) {
        self.rt
            .block_on(self.client.delete_item().table_name(table).key("id", AttributeValue::S(id.into())).send())
            .expect("DeleteItem");
    }

    fn manifest(&self, source: &str, extra: &str) -> String {
        format!(
            "[EventSource]\nType = \"DynamoDB\"\n{source}\nEndpointUrl = \"{}\"\nPollingIntervalInMilliseconds = 100\n{extra}\n",
            self.emulator.endpoint
        )
    }
}

/// A change as inspect logs it: `eventID eventName [requestId] keys=.. new=.. old=..`.
#[derive(Debug)]
struct Change {
    name: String,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
}

fn changes(host: &Host, function: &str) -> Vec<Change> {
    host.handler_messages(function)
        .iter()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let _event_id = parts.next()?;
            let name = parts.next()?.to_owned();
            let rest = parts.next()?.split_once("] ")?.1;
            let (keys, rest) = rest.strip_prefix("keys=")?.split_once(" new=")?;
            let (new, old) = rest.split_once(" old=")?;
            let image = |text: &str| (text != "-").then(|| serde_json::from_str(text).expect("image JSON"));
            Some(Change { name, keys: serde_json::from_str(keys).ok()?, new: image(new), old: image(old) })
        })
        .collect()
}

#[test]
fn insert_modify_and_remove_carry_the_images_of_each_stream_view_type() {
    let dynamo = Dynamo::start();
    let ws = Workspace::new();
    let views = [
        ("keysonly", StreamViewType::KeysOnly, false, false),
        ("newimage", StreamViewType::NewImage, true, false),
        ("oldimage", StreamViewType::OldImage, false, true),
        ("both", StreamViewType::NewAndOldImages, true, true),
    ];
    for (i, (table, view, _, _)) in views.iter().enumerate() {
        let arn = dynamo.create_table(table, view.clone());
        // Half by table name (the latest stream), half by stream ARN.
        let source = if i % 2 == 0 { format!("Table = \"{table}\"") } else { format!("Stream = \"{arn}\"") };
        ws.deploy(table, "inspect", &dynamo.manifest(&source, ""));
    }
    let host = Host::start(&ws);
    for (table, ..) in &views {
        host.wait_state(table, "running");
    }
    for (table, ..) in &views {
        dynamo.put(table, "a", 1);
        dynamo.update(table, "a", 2);
        dynamo.delete(table, "a");
    }
    for (table, _, has_new, has_old) in views {
        let seen = wait_for(&format!("{table}'s three changes"), || {
            let c = changes(&host, table);
            (c.len() >= 3).then_some(c)
        });
        assert_eq!(seen.len(), 3, "{table}: {seen:?}");
        let names: Vec<&str> = seen.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"], "{table}");
        for change in &seen {
            assert_eq!(change.keys, serde_json::json!({"id": {"S": "a"}}), "{table}");
        }
        let n = |image: &Option<Value>| image.as_ref().map(|i| i["n"]["N"].as_str().unwrap_or_default().to_owned());
        let expect = |present: bool, value: &str| present.then(|| value.to_owned());
        // INSERT has no old image, REMOVE no new one.
        assert_eq!(n(&seen[0].new), expect(has_new, "1"), "{table} INSERT new");
        assert_eq!(n(&seen[0].old), None, "{table} INSERT old");
        assert_eq!(n(&seen[1].new), expect(has_new, "2"), "{table} MODIFY new");
        assert_eq!(n(&seen[1].old), expect(has_old, "1"), "{table} MODIFY old");
        assert_eq!(n(&seen[2].new), None, "{table} REMOVE new");
        assert_eq!(n(&seen[2].old), expect(has_old, "2"), "{table} REMOVE old");
    }
    let status = host.function("both").expect("status");
    assert!(status["source"].as_str().is_some_and(|s| s.starts_with("dynamodb:")), "{status}");
}

#[test]
fn the_emulator_stopped_and_restarted_while_the_host_polls_loses_nothing() {
    let mut dynamo = Dynamo::start();
    dynamo.create_table("orders", StreamViewType::NewImage);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &dynamo.manifest("Table = \"orders\"", ""));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    for i in 0..10 {
        dynamo.put("orders", &format!("before-{i}"), i);
    }
    wait_for("the first ten changes", || (changes(&host, "inspect").len() >= 10).then_some(()));

    dynamo.emulator.stop();
    wait_for("the host to notice the emulator is gone", || {
        host.log_text().contains("GetRecords failed").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    dynamo.emulator.restart();
    for i in 0..10 {
        dynamo.put("orders", &format!("after-{i}"), i);
    }
    let seen = wait_for("all twenty changes", || {
        let c = changes(&host, "inspect");
        (c.len() >= 20).then_some(c)
    });
    let ids: Vec<String> = seen.iter().map(|c| c.keys["id"]["S"].as_str().unwrap_or_default().to_owned()).collect();
    let expected: Vec<String> =
        (0..10).map(|i| format!("before-{i}")).chain((0..10).map(|i| format!("after-{i}"))).collect();
    assert_eq!(ids, expected, "every change once, in order");
}

#[test]
fn a_role_lets_a_handler_keep_state_in_the_dynamodb_tables_it_names_and_no_other() {
    let dynamo = Dynamo::start();
    dynamo.create_table("state", StreamViewType::KeysOnly);
    dynamo.create_table("other", StreamViewType::KeysOnly);
    let arn = |table: &str| {
        let out = dynamo.rt.block_on(dynamo.client.describe_table().table_name(table).send()).expect("DescribeTable");
        out.table().and_then(|t| t.table_arn()).expect("an ARN").to_owned()
    };
    let (state, other) = (arn("state"), arn("other"));
    let ws = Workspace::new();
    ws.create_stream("probes", 1);
    ws.write_role(
        "stateful",
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"kinesis:*","Resource":"arn:aws:kinesis:local:000000000000:stream/probes"}},
                {{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:PutItem","dynamodb:DeleteItem"],"Resource":"{state}"}}]}}"#
        ),
    );
    ws.deploy("prober", "hostile", &format!("Role = \"stateful\"\n{}", eddy_tests::manifest("probes", "")));
    let host = Host::start_with_env(&ws, &[], &[("AWS_ENDPOINT_URL_DYNAMODB", &dynamo.emulator.endpoint)]);
    host.wait_state("prober", "running");
    host.put("probes", "k", &[format!("kv {state}"), format!("kv {other}")]);
    let outcomes = wait_for("both probes", || {
        let m: Vec<String> = host.handler_messages("prober").into_iter().filter(|m| m.starts_with("probe kv: ")).collect();
        (m.len() == 2).then_some(m)
    });
    assert_eq!(outcomes[0], r#"probe kv: read Some("one"), swapped true, stale swap false, now Some("two")"#);
    assert!(
        outcomes[1].contains(&format!("is not authorized to perform: dynamodb:PutItem on resource: {other}")),
        "{outcomes:?}"
    );
    let item = dynamo
        .rt
        .block_on(dynamo.client.get_item().table_name("state").key("id", AttributeValue::S("hostile".into())).send())
        .expect("GetItem");
    let value = item.item().and_then(|i| i.get("value")).cloned();
    assert_eq!(value, Some(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new("two"))));
    let count = dynamo.rt.block_on(dynamo.client.scan().table_name("other").send()).expect("Scan").count();
    assert_eq!(count, 0, "the denied write never reached the table");
}

/// A DynamoDB stream's failure records on moto: after an exception (SQS) and
/// after a batch item failure (S3, with the batch's event as `payload`), with
/// `DDBStreamBatchInfo` and its whole-second arrival times.
#[test]
fn failure_records_of_a_dynamodb_stream_reach_sqs_and_s3_as_lambda_writes_them() {
    use eddy_tests::destinations::{Expected, Moto, check_failure_record};
    let dynamo = Dynamo::start();
    let moto = Moto::start();
    let ws = Workspace::new();
    let thrown_arn = dynamo.create_table("thrown", StreamViewType::NewImage);
    let items_arn = dynamo.create_table("items", StreamViewType::NewImage);
    let queue = moto.create_queue("ddb-thrown");
    let bucket = moto.create_bucket("ddb-items");
    ws.deploy(
        "thrown",
        "responder",
        &dynamo.manifest("Table = \"thrown\"", &format!("MaximumRetryAttempts = 1\n{}", moto.on_failure(&queue))),
    );
    ws.deploy(
        "items",
        "responder",
        &dynamo.manifest(
            "Table = \"items\"",
            &format!("FunctionResponseTypes = [\"ReportBatchItemFailures\"]\nMaximumRetryAttempts = 0\n{}", moto.on_failure(&bucket)),
        ),
    );
    let host = Host::start(&ws);
    host.wait_state("thrown", "running");
    host.wait_state("items", "running");
    let put = |table: &str, id: &str, respond: &str| {
        dynamo
            .rt
            .block_on(
                dynamo
                    .client
                    .put_item()
                    .table_name(table)
                    .item("id", AttributeValue::S(id.into()))
                    .item("respond", AttributeValue::S(respond.into()))
                    .send(),
            )
            .expect("PutItem");
    };
    put("thrown", "a", "raise");
    put("items", "b", r#"{"batchItemFailures":[{"itemIdentifier":"$SEQ0"}]}"#);

    let shard_of = |name: &str| {
        let f = wait_for(&format!("{name}'s shard"), || host.function(name).filter(|f| f["shards"][0]["shard"].is_string()));
        f["shards"][0]["shard"].as_str().unwrap_or_default().to_owned()
    };
    let record = moto.messages("ddb-thrown", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(serde_json::json!("Unhandled")),
            invoke_count: 2,
            batch_size: 1,
            start_sequence: None,
            stream_arn: &thrown_arn,
            shard: &shard_of("thrown"),
        },
    );
    let (_, record) = moto.objects("ddb-items", 1).remove(0);
    check_failure_record(
        &record,
        &Expected {
            condition: "RetryAttemptsExhausted",
            function_error: Some(Value::Null),
            invoke_count: 1,
            batch_size: 1,
            start_sequence: None,
            stream_arn: &items_arn,
            shard: &shard_of("items"),
        },
    );
    let change = &record["payload"]["Records"][0];
    assert_eq!(change["eventSource"], "aws:dynamodb", "{record}");
    assert_eq!(change["dynamodb"]["NewImage"]["id"]["S"], "b", "{record}");
    assert_eq!(change["dynamodb"]["SequenceNumber"], record["DDBStreamBatchInfo"]["startSequenceNumber"]);
}
