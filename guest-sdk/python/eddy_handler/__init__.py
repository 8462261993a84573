"""Helpers for Eddy handlers written in Python: the same conveniences as the Rust
SDK (decoded record data, JSON, a batch helper that turns exceptions into batch
item failures, logging) for both handler worlds of wit/handler.wit.

JSON world: ``Json = json_handler(handle)`` where ``handle(event, context)`` gets
Lambda's event as a dict and Lambda's context object, and returns the response
(a dict, or None for success). A file written for Lambda's Python runtime
(``def lambda_handler(event, context)``) needs none of this: ``build.sh`` wraps
it with ``lambda_handler``.

Typed world: ``Typed = typed_handler(handle)`` where ``handle(batch, context)``
gets the records as WIT gives them (``data`` as bytes).

Built with ``guest-sdk/python/build.sh`` (componentize-py).
"""

import base64
import json as _json
import time as _time

from componentize_py_types import Err
from wit_world.imports import invocation as _invocation
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import types as _types

__all__ = [
    "log", "data_text", "data_json", "item_identifier", "sub_sequence_number", "records", "process_batch",
    "LambdaContext", "json_handler", "lambda_handler", "typed_handler",
]

_LEVELS = {
    "trace": _log.Level.TRACE, "debug": _log.Level.DEBUG, "info": _log.Level.INFO,
    "warn": _log.Level.WARN, "error": _log.Level.ERROR,
}


def log(message, level="info", **fields):
    """Writes a log line with optional fields: ``log("saved", user="alice")``."""
    pairs = [(k, v if isinstance(v, str) else _json.dumps(v)) for k, v in fields.items()]
    _log.log(_LEVELS[level], str(message), pairs)


def data_text(record):
    """A record's data as text: a Kinesis record's decoded data (JSON world,
    base64; typed world, bytes), or a DynamoDB record's NewImage as JSON."""
    if isinstance(record, dict):
        if "kinesis" in record:
            return base64.b64decode(record["kinesis"]["data"]).decode("utf-8")
        return _json.dumps(record.get("dynamodb", {}).get("NewImage"))
    if isinstance(record, _types.KinesisRecord):
        return bytes(record.data).decode("utf-8")
    return record.new_image or "null"


def data_json(record):
    """A record's data parsed as JSON; raises (so the record fails) if it is not JSON."""
    return _json.loads(data_text(record))


def sub_sequence_number(record):
    """For a user record the host split out of a KPL aggregate
    (``DeaggregateRecords``), its index in the aggregate (the JSON world's
    ``kinesis.subSequenceNumber``, the last part of the typed world's
    ``event_id``); otherwise ``None``."""
    if isinstance(record, dict):
        return record.get("kinesis", {}).get("subSequenceNumber")
    event_id, sequence = getattr(record, "event_id", None), getattr(record, "sequence_number", None)
    if not isinstance(event_id, str) or not isinstance(sequence, str):
        return None
    head, _, tail = event_id.rpartition(":")
    if tail.isdigit() and head.endswith(":" + sequence) and head != ":" + sequence:
        return int(tail)
    return None


def item_identifier(record):
    """What names a record in ``batchItemFailures``: its sequence number, and for
    a user record of a KPL aggregate ``<sequence>:<sub>``."""
    if isinstance(record, dict):
        if "dynamodb" in record:
            return record["dynamodb"]["SequenceNumber"]
        sequence = record["kinesis"]["sequenceNumber"]
    else:
        sequence = record.sequence_number
    sub = sub_sequence_number(record)
    return sequence if sub is None else f"{sequence}:{sub}"


def records(event_or_batch):
    """The records of a JSON-world event or of a typed-world batch."""
    if isinstance(event_or_batch, dict):
        return event_or_batch.get("Records", [])
    return event_or_batch.records.value


def process_batch(event_or_batch, handle):
    """Runs ``handle(record)`` for each record in order; a record whose handle
    raises is reported as a batch item failure. Returns Lambda's response."""
    failures = []
    for record in records(event_or_batch):
        try:
            handle(record)
        except Exception as error:  # noqa: BLE001 - any failure of a record is reported
            log(f"record {item_identifier(record)} failed: {error}", "warn")
            failures.append({"itemIdentifier": item_identifier(record)})
    return {"batchItemFailures": failures}


class LambdaContext:
    """Lambda's Python context object, from the invocation's WIT context."""

    def __init__(self, context):
        self.function_name = context.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{context.function_name}"
        self.memory_limit_in_mb = str(context.memory_limit_mb)
        self.aws_request_id = context.request_id
        self.log_group_name = f"/aws/lambda/{context.function_name}"
        self.log_stream_name = context.request_id

    def get_remaining_time_in_millis(self):
        return _invocation.remaining_time_ms()


def json_handler(handle):
    """The JSON world's export class for ``handle(event, context) -> response``."""

    class Json:
        def handle(self, event, context):
            try:
                response = handle(_json.loads(event), LambdaContext(context))
            except Exception as error:  # noqa: BLE001 - Lambda reports any exception
                raise Err(_json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}))
            # As Lambda's Python runtime: the return value through json.dumps, so
            # None is `null` and every falsy value its own JSON.
            return _json.dumps(response)

    return Json


def lambda_handler(handler):
    """The JSON world's export class for a function written for Lambda's Python
    runtime, ``def lambda_handler(event, context)``."""
    if not callable(handler):
        raise TypeError("the module has no `lambda_handler` (or `handler`) function")
    return json_handler(handler)


def typed_handler(handle):
    """The typed world's export class for ``handle(batch, context) -> response``,
    where the response is ``{"batchItemFailures": [...]}`` (sequence numbers or
    ``{"itemIdentifier": ...}`` dicts) and optionally ``"state"``."""

    class Typed:
        def handle(self, batch, context):
            try:
                response = handle(batch, context) or {}
            except Exception as error:  # noqa: BLE001 - a function error
                raise Err(str(error))
            failures = [f if isinstance(f, str) else f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
            return _types.BatchResponse(batch_item_failures=failures, state=response.get("state"))

    return Typed


class Idempotency:
    """Skips records already processed, as Powertools' idempotency utility does:
    each key (a record's ``eventID``, or a field of it) is marked done in the
    key-value table ``table`` (a name in the host's embedded store, or a DynamoDB
    table ARN; the role needs ``dynamodb:GetItem`` and ``dynamodb:PutItem`` on
    it) once its work succeeded, and a batch delivered again skips the keys
    marked done. Marks last ``ttl_seconds`` (an hour unless told)::

        processed = Idempotency("processed-orders")
        process_batch(event, lambda record: processed.once(record["eventID"], lambda: charge(record)))

    A crash between the work and its mark repeats that one key's work: work that
    must happen exactly once whatever happens must itself be idempotent."""

    def __init__(self, table, ttl_seconds=3600):
        self.table = table
        self.ttl_ms = int(ttl_seconds * 1000)

    def is_done(self, key):
        """Whether ``key`` is marked done, and the mark has not expired."""
        mark = _kv.get(self.table, key)
        if mark is None:
            return False
        text = bytes(mark).decode("utf-8", "replace")
        if not text.startswith("done "):
            return False
        try:
            return int(text[5:]) > _now_ms()
        except ValueError:
            return False

    def once(self, key, work):
        """Runs ``work()`` unless ``key`` is marked done, and marks it done if it
        returns. True if it ran now, False if it was done before; a ``work`` that
        raises leaves no mark, and the exception goes on."""
        if self.is_done(key):
            return False
        work()
        _kv.set(self.table, key, f"done {_now_ms() + self.ttl_ms}".encode())
        return True


def _now_ms():
    return int(_time.time() * 1000)
