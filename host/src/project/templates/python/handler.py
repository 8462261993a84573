"""{{name}}: each record's data is an order as JSON, such as {"amount": 12.5}.
A record that is not one raises, and comes back as a batch item failure, so the
host retries from it. Build with ``eddy build .``; try with
``eddy generate-event kinesis --data '{"amount": 3}' > event.json`` and
``eddy invoke functions/{{name}}.wasm --event event.json``."""

from eddy_handler import data_json, json_handler, log, process_batch


def handle(event, context):
    total = 0

    def add(record):
        nonlocal total
        amount = data_json(record)["amount"]
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError("not an order")
        total += amount

    response = process_batch(event, add)
    failed = len(response["batchItemFailures"])
    log(f"{context.function_name}: {len(event['Records'])} records, {failed} failed; total {total:g}")
    return response


Json = json_handler(handle)
