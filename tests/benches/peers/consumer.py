"""The Python peer of the benchmark (tests/benches/peers.rs): what a user writes
instead of an event source mapping. It polls every shard of a Kinesis stream with
boto3, round robin, and calls a Lambda handler in-process with Lambda's
``Records`` event, one call per GetRecords response.

    python -u consumer.py --endpoint URL --stream NAME --handler FILE
        [--position TRIM_HORIZON|LATEST] [--records N] [--poll-ms 100] [--limit 1000]

It prints ``ready`` once it holds a shard iterator for every shard, waits for a
line on stdin, polls until it has handled N records (for ever when N is 0),
prints ``done N``, and waits for stdin to close."""

import argparse
import base64
import importlib.util
import logging
import os
import sys
import time
import uuid

import boto3

parser = argparse.ArgumentParser()
parser.add_argument("--endpoint", required=True)
parser.add_argument("--stream", required=True)
parser.add_argument("--handler", required=True)
parser.add_argument("--position", default="TRIM_HORIZON")
parser.add_argument("--records", type=int, default=0)
parser.add_argument("--poll-ms", type=int, default=100)
parser.add_argument("--limit", type=int, default=1000)
options = parser.parse_args()

# Lambda's Python runtime gives the root logger a handler that writes to stdout.
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[%(levelname)s]\t%(message)s")
spec = importlib.util.spec_from_file_location("handler_module", options.handler)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
handler = module.lambda_handler

client = boto3.client("kinesis", endpoint_url=options.endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
shards = client.list_shards(StreamName=options.stream)["Shards"]
iterators = {
    shard["ShardId"]: client.get_shard_iterator(
        StreamName=options.stream, ShardId=shard["ShardId"], ShardIteratorType=options.position
    )["ShardIterator"]
    for shard in shards
}
stream_arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{options.stream}"


class Context:
    def __init__(self):
        self.function_name = "python-peer"
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = "128"
        self._deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


def lambda_record(shard_id, record):
    """Lambda's record shape, as the handler expects it."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode("ascii"),
            "approximateArrivalTimestamp": record["ApproximateArrivalTimestamp"].timestamp(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/peer",
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn,
    }


print("ready", flush=True)
sys.stdin.readline()

handled = 0
while iterators and not (options.records and handled >= options.records):
    got_any = False
    for shard_id, iterator in list(iterators.items()):
        out = client.get_records(ShardIterator=iterator, Limit=options.limit)
        if out.get("NextShardIterator"):
            iterators[shard_id] = out["NextShardIterator"]
        else:
            del iterators[shard_id]
        if out["Records"]:
            got_any = True
            handler({"Records": [lambda_record(shard_id, r) for r in out["Records"]]}, Context())
            handled += len(out["Records"])
    if not got_any:
        time.sleep(options.poll_ms / 1000)

print(f"done {handled}", flush=True)
sys.stdin.readline()
