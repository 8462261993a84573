"""Forwards each record to the local stream ``delivered``, once, however often
its batch is delivered: eddy_handler's Idempotency marks each eventID done in
the key-value table ``processed-python-once`` and skips the ones marked.

To show it, a record whose data is ``crash`` makes the first delivery of its
batch fail right after forwarding it: the host delivers the batch again, and
the records up to the failure are skipped."""

import base64

from eddy_handler import Idempotency, data_text, json_handler, log
from wit_world.imports import kv, streams


def handle(event, context):
    processed = Idempotency("processed-python-once")
    forwarded = skipped = 0
    for record in event["Records"]:
        kinesis = record["kinesis"]

        def forward():
            streams.put_record("delivered", kinesis["partitionKey"], base64.b64decode(kinesis["data"]))

        if processed.once(record["eventID"], forward):
            forwarded += 1
        else:
            skipped += 1
        # eventIDs are unique within a stream only: the flag's key names the function.
        flag = f"{context.function_name}/{record['eventID']}"
        if data_text(record) == "crash" and kv.compare_and_set("once-demo", flag, None, b"crashed"):
            raise RuntimeError(f"crashing midway through the batch, after {forwarded + skipped} records")
    log(f"{context.function_name}: forwarded {forwarded}, skipped {skipped} already done")
    return {"batchItemFailures": []}


Json = json_handler(handle)
