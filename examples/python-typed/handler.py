"""The scenario of tests/languages.rs in Python's typed world: the records come
as WIT gives them (data as bytes, no base64, no JSON event to parse)."""

from eddy_handler import data_json, log, process_batch, records, typed_handler


def handle(batch, context):
    totals = {}

    def add(record):
        amount = data_json(record)["amount"]
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError("not a sale")
        totals[record.partition_key] = totals.get(record.partition_key, 0) + amount

    response = process_batch(batch, add)
    summary = " ".join(f"{user}={total:g}" for user, total in sorted(totals.items()))
    log(f"{context.function_name}: {len(records(batch))} records, {len(response['batchItemFailures'])} failed; totals {summary}")
    return response


Typed = typed_handler(handle)
