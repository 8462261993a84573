//! `eddy generate-event`: a sample Lambda event to edit and pass to `eddy invoke`.

use clap::Subcommand;

use eddy::record::{Batch, DynamodbEventName, DynamodbRecord, EventSource, KinesisRecord, Records};
use eddy::store::now_ms;

#[derive(Subcommand)]
pub enum GenerateEventCommand {
    /// A Kinesis event: Lambda's `Records` with base64 data.
    #[command(after_help = "Examples:
  eddy generate-event kinesis
  eddy generate-event kinesis --data '{\"amount\": 4}' --data 'not json' --partition-key alice")]
    Kinesis {
        /// Data of a record, as text (repeatable; two samples by default).
        #[arg(long)]
        data: Vec<String>,
        /// Partition key of the records.
        #[arg(long, default_value = "1")]
        partition_key: String,
    },
    /// A DynamoDB Streams event: an INSERT, a MODIFY and a REMOVE of one item.
    #[command(after_help = "Example:
  eddy generate-event dynamodb > event.json")]
    Dynamodb,
}

pub fn run(command: GenerateEventCommand) -> anyhow::Result<std::process::ExitCode> {
    let arrival = now_ms();
    let batch = match command {
        GenerateEventCommand::Kinesis { data, partition_key } => {
            let data = if data.is_empty() {
                vec!["Hello, this is a test.".to_owned(), "This is only a test.".to_owned()]
            } else {
                data
            };
            let shard = "shardId-000000000000";
            let records = data
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let sequence_number = format!("49590338271490256608559692{:030}", i + 1);
                    KinesisRecord {
                        event_id: format!("{shard}:{sequence_number}"),
                        partition_key: partition_key.clone(),
                        sequence_number,
                        data: text.into_bytes(),
                        approximate_arrival_timestamp_ms: arrival,
                        encryption_type: None,
                    }
                })
                .collect();
            Batch {
                event_source: EventSource::Kinesis,
                event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/example-stream".into(),
                aws_region: "us-east-1".into(),
                invoke_identity_arn: "arn:aws:iam::123456789012:role/lambda-role".into(),
                shard_id: shard.into(),
                records: Records::Kinesis(records),
                window: None,
            }
        }
        GenerateEventCommand::Dynamodb => {
            let keys = r#"{"Id":{"N":"101"}}"#.to_owned();
            let new = r#"{"Message":{"S":"New item!"},"Id":{"N":"101"}}"#.to_owned();
            let changed = r#"{"Message":{"S":"This item has changed"},"Id":{"N":"101"}}"#.to_owned();
            let record = |i: u64, name, new_image: Option<String>, old_image: Option<String>| DynamodbRecord {
                event_id: uuid::Uuid::new_v4().simple().to_string(),
                event_name: name,
                sequence_number: format!("{}00000000000000000000{}", i, i),
                approximate_creation_date_time_ms: (arrival / 1000) * 1000,
                keys: keys.clone(),
                size_bytes: eddy::dynamodb_size::record_size(&keys, new_image.as_deref(), old_image.as_deref()),
                new_image,
                old_image,
                stream_view_type: "NEW_AND_OLD_IMAGES".into(),
                user_identity_principal: None,
            };
            Batch {
                event_source: EventSource::Dynamodb,
                event_source_arn:
                    "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTable/stream/2024-01-01T00:00:00.000".into(),
                aws_region: "us-east-1".into(),
                invoke_identity_arn: String::new(),
                shard_id: "shardId-00000001700000000000-00000000".into(),
                records: Records::Dynamodb(vec![
                    record(1, DynamodbEventName::Insert, Some(new.clone()), None),
                    record(2, DynamodbEventName::Modify, Some(changed.clone()), Some(new)),
                    record(3, DynamodbEventName::Remove, None, Some(changed)),
                ]),
                window: None,
            }
        }
    };
    println!("{}", eddy::event::encode_pretty(&batch));
    Ok(std::process::ExitCode::SUCCESS)
}
