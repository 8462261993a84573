"""Prints a Lambda Kinesis event of 100 records (63 bytes of JSON data each), for
tests/benches/js-costs/index.mjs."""
import base64
import json

data = base64.b64encode(b'{"amount": 12.5, "item": "widget-0042", "customer": "c-123456"}').decode()
records = []
for i in range(100):
    sequence = str(49590338271490256608559692538361571095921575989136588898 + i)
    records.append({
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"user-{i % 10}", "sequenceNumber": sequence,
                    "data": data, "approximateArrivalTimestamp": 1545084650.987},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000006:{sequence}",
        "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2", "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
    })
print(json.dumps({"Records": records}))
