// A producer of KPL aggregates: AWS's own aggregation library (aws-kinesis-agg,
// the Kinesis Producer Library's record format) builds the aggregates and the
// AWS SDK for JavaScript puts them, one PutRecord each, in order, to a Kinesis
// endpoint: Eddy's Kinesis API on a local stream, kinesis-mock, or Kinesis.
// A function whose manifest has `DeaggregateRecords = true` (kpl.toml) sees
// each user record on its own. tests/kpl.rs runs it.
//
//   npm install aws-kinesis-agg@4.2.8 @aws-sdk/client-kinesis @smithy/node-http-handler
//   eddy stream create orders --shards 1 && eddy run &        # Kinesis API on 127.0.0.1:8700
//   node produce.js http://127.0.0.1:8700 orders '[{"aggregate": [["alice", "one"], ["bob", "two"]]}]'
//
// The last argument is a JSON list; each item is one Kinesis record:
//   {"aggregate": [[partitionKey, text, explicitHashKey?], ...]}
//   {"plain": [partitionKey, text]}
//   {"malformed": partitionKey}  (the magic bytes and a body that is no aggregate)
// Prints the sequence number of each record put, as a JSON list.
const { KinesisClient, PutRecordCommand } = require("@aws-sdk/client-kinesis");
const { NodeHttpHandler } = require("@smithy/node-http-handler");
const { RecordAggregator } = require("aws-kinesis-agg");

const [endpoint, stream, putsJson] = process.argv.slice(2);
const client = new KinesisClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "any", secretAccessKey: "any" },
  requestHandler: new NodeHttpHandler(),
});

function record(put) {
  if (put.aggregate) {
    const aggregator = new RecordAggregator();
    for (const [partitionKey, text, explicitHashKey] of put.aggregate) {
      aggregator.addUserRecord({ partitionKey, data: Buffer.from(text), ...(explicitHashKey ? { explicitHashKey } : {}) });
    }
    const built = aggregator.build();
    return { PartitionKey: built.partitionKey, Data: built.data };
  }
  if (put.plain) return { PartitionKey: put.plain[0], Data: Buffer.from(put.plain[1]) };
  if (put.malformed) {
    return { PartitionKey: put.malformed, Data: Buffer.concat([Buffer.from([0xf3, 0x89, 0x9a, 0xc2]), Buffer.from("no protobuf here, no digest either")]) };
  }
  throw new Error(`unknown put ${JSON.stringify(put)}`);
}

(async () => {
  const sequences = [];
  for (const put of JSON.parse(putsJson)) {
    const out = await client.send(new PutRecordCommand({ StreamName: stream, ...record(put) }));
    sequences.push(out.SequenceNumber);
  }
  console.log(JSON.stringify(sequences));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
