// The Node.js peer of the benchmark (tests/benches/peers.rs): what a user writes
// instead of an event source mapping. It polls every shard of a Kinesis stream
// with the AWS SDK for JavaScript v3 and calls a Lambda handler in-process with
// Lambda's `Records` event, one call per GetRecords response.
//
//   node consumer.mjs --endpoint URL --stream NAME --handler FILE
//        [--position TRIM_HORIZON|LATEST] [--records N] [--poll-ms 100] [--limit 1000]
//
// It prints `ready` once it holds a shard iterator for every shard, waits for a
// line on stdin, polls until it has handled N records (for ever when N is 0),
// prints `done N`, and waits for stdin to close.
import { randomUUID } from 'node:crypto';
import { Agent } from 'node:http';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const options = { position: 'TRIM_HORIZON', records: '0', 'poll-ms': '100', limit: '1000' };
for (let i = 2; i < process.argv.length; i += 2) options[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const target = Number(options.records);
const pollMs = Number(options['poll-ms']);
const limit = Number(options.limit);

const { handler } = await import(pathToFileURL(resolve(options.handler)).href);
// The Kinesis client speaks HTTP/2 by default (for SubscribeToShard); emulators
// such as kinesalite speak HTTP/1.1, as a poller needs.
const client = new KinesisClient({
  endpoint: options.endpoint,
  region: process.env.AWS_REGION ?? 'us-east-1',
  requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true }) }),
});
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const { Shards: shards } = await client.send(new ListShardsCommand({ StreamName: options.stream }));
const iterators = await Promise.all(
  shards.map(async (shard) => {
    const out = await client.send(
      new GetShardIteratorCommand({ StreamName: options.stream, ShardId: shard.ShardId, ShardIteratorType: options.position }),
    );
    return [shard.ShardId, out.ShardIterator];
  }),
);
const streamArn = `arn:aws:kinesis:us-east-1:000000000000:stream/${options.stream}`;

console.log('ready');
await stdin.next();

let handled = 0;
let finished = false;

// Lambda's record shape, as the handler expects it.
function lambdaRecord(shardId, record) {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: record.PartitionKey,
      sequenceNumber: record.SequenceNumber,
      data: Buffer.from(record.Data).toString('base64'),
      approximateArrivalTimestamp: record.ApproximateArrivalTimestamp.getTime() / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${shardId}:${record.SequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/peer',
    awsRegion: 'us-east-1',
    eventSourceARN: streamArn,
  };
}

function context() {
  const deadline = Date.now() + 60_000;
  return {
    functionName: 'node-peer',
    awsRequestId: randomUUID(),
    memoryLimitInMB: '128',
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
}

async function pollShard(shardId, iterator) {
  while (iterator && !finished) {
    const out = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }));
    iterator = out.NextShardIterator;
    if (out.Records.length === 0) {
      await sleep(pollMs);
      continue;
    }
    await handler({ Records: out.Records.map((r) => lambdaRecord(shardId, r)) }, context());
    handled += out.Records.length;
    if (target > 0 && handled >= target && !finished) {
      finished = true;
      console.log(`done ${handled}`);
    }
  }
}

await Promise.all(iterators.map(([shardId, iterator]) => pollShard(shardId, iterator)));
await stdin.next();
process.exit(0);
