"""Totals per user in Python, with Eddy's helpers (guest-sdk/python): a Kinesis
record's partition key is the user and its data JSON such as {"amount": 12.5};
a DynamoDB record's NewImage has ``user`` and ``amount``. A record that is not a
sale raises, and comes back as a batch item failure."""

from eddy_handler import data_json, json_handler, log, process_batch


def sale(record):
    if "kinesis" in record:
        amount = data_json(record)["amount"]
        user = record["kinesis"]["partitionKey"]
    else:
        image = record["dynamodb"]["NewImage"]
        user, amount = image["user"]["S"], float(image["amount"]["N"])
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"not a sale: {amount!r}")
    return user, amount


def handle(event, context):
    totals = {}

    def add(record):
        user, amount = sale(record)
        totals[user] = totals.get(user, 0) + amount

    response = process_batch(event, add)
    summary = " ".join(f"{user}={total:g}" for user, total in sorted(totals.items()))
    failed = len(response["batchItemFailures"])
    log(f"python: {len(event['Records'])} records, {failed} failed; totals {summary}", function=context.function_name)
    return response


Json = json_handler(handle)
