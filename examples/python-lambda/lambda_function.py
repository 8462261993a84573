"""A handler written for AWS Lambda's Python runtime, as it is: Eddy runs it after
``guest-sdk/python/build.sh lambda_function.py out.wasm``, with no change to this
file.

Totals per user: a Kinesis record's partition key is the user and its data JSON
such as {"amount": 12.5}; a DynamoDB record's NewImage has ``user`` and
``amount``. Records that are not sales are reported in ``batchItemFailures`` (the
mapping has ReportBatchItemFailures on)."""

import base64
import json
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    totals = {}
    batch_item_failures = []
    for record in event["Records"]:
        try:
            if "kinesis" in record:
                payload = json.loads(base64.b64decode(record["kinesis"]["data"]).decode("utf-8"))
                user, amount = record["kinesis"]["partitionKey"], payload["amount"]
            else:
                image = record["dynamodb"]["NewImage"]
                user, amount = image["user"]["S"], float(image["amount"]["N"])
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise ValueError(f"not a sale: {amount!r}")
            totals[user] = totals.get(user, 0) + amount
        except Exception as error:
            logger.warning("skipping a record: %s", error)
            identifier = record["kinesis"]["sequenceNumber"] if "kinesis" in record else record["dynamodb"]["SequenceNumber"]
            batch_item_failures.append({"itemIdentifier": identifier})
    summary = " ".join(f"{user}={total:g}" for user, total in sorted(totals.items()))
    logger.info("%s: %d records, %d failed; totals %s", context.function_name, len(event["Records"]),
                len(batch_item_failures), summary)
    print(f"{context.get_remaining_time_in_millis()} ms left of {context.memory_limit_in_mb} MB, request {context.aws_request_id}")
    return {"batchItemFailures": batch_item_failures}
