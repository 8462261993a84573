// Helpers for Eddy handlers written in JavaScript: the same conveniences as the
// Rust SDK (decoded record data, JSON, a batch helper that turns thrown errors
// into batch item failures, logging) for both handler worlds of wit/handler.wit.
//
// JSON world: export `json = jsonHandler(async (event, context) => response)`,
// where `event` is Lambda's event object and `context` Lambda's context object.
// A file written for Lambda's Node.js runtime (`export const handler = ...`)
// needs none of this: `build.sh` wraps it with `lambdaHandler`.
//
// Typed world: export `typed = typedHandler(async (batch, context) => response)`,
// with the records as WIT gives them (`data` as bytes).
//
// Built with `guest-sdk/js/build.sh`, which bundles with esbuild and makes a
// component with `jco componentize`.

import { log as hostLog } from 'eddy:handler/log@0.1.0';
import { remainingTimeMs } from 'eddy:handler/invocation@0.1.0';
import * as kv from 'eddy:handler/kv@0.1.0';

const utf8 = new TextDecoder();

function write(level, message, fields) {
  const pairs = Object.entries(fields ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
  hostLog(level, String(message), pairs);
}

/** Log lines with optional fields: `log.info('saved', { user: 'alice' })`. */
export const log = {
  trace: (message, fields) => write('trace', message, fields),
  debug: (message, fields) => write('debug', message, fields),
  info: (message, fields) => write('info', message, fields),
  warn: (message, fields) => write('warn', message, fields),
  error: (message, fields) => write('error', message, fields),
};

// The engine's own base64 decoder (native code), where it has one.
const nativeBase64 = typeof Uint8Array.fromBase64 === 'function';

/** Decodes base64 to bytes (the JavaScript engine has no Node's Buffer). */
export function fromBase64(text) {
  if (nativeBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * A record's data as text: a Kinesis record's decoded `data` (JSON world, base64;
 * typed world, bytes), or a DynamoDB record's `NewImage` as attribute-value JSON.
 */
export function dataText(record) {
  const kinesis = record.kinesis ?? (record.partitionKey !== undefined ? record : undefined);
  if (kinesis) {
    return utf8.decode(typeof kinesis.data === 'string' ? fromBase64(kinesis.data) : kinesis.data);
  }
  const image = record.dynamodb?.NewImage ?? record.newImage;
  return typeof image === 'string' ? image : JSON.stringify(image ?? null);
}

/** A record's data parsed as JSON; throws (so the record fails) if it is not JSON. */
export function dataJson(record) {
  return JSON.parse(dataText(record));
}

/**
 * For a user record the host split out of a KPL aggregate (`DeaggregateRecords`),
 * its index in the aggregate (the JSON world's `kinesis.subSequenceNumber`, the
 * last part of the typed world's `eventId`); otherwise `undefined`.
 */
export function subSequenceNumber(record) {
  if (record.kinesis) return record.kinesis.subSequenceNumber;
  const { eventId, sequenceNumber } = record;
  if (typeof eventId !== 'string' || typeof sequenceNumber !== 'string') return undefined;
  const tail = eventId.slice(eventId.lastIndexOf(':') + 1);
  return eventId.endsWith(`:${sequenceNumber}:${tail}`) && /^[0-9]+$/.test(tail) ? Number(tail) : undefined;
}

/**
 * What identifies a record in `batchItemFailures`: its sequence number (Kinesis
 * `sequenceNumber`, DynamoDB `SequenceNumber`, or the typed world's field), and
 * for a user record of a KPL aggregate `<sequence>:<sub>`.
 */
export function itemIdentifier(record) {
  const sequence = record.kinesis?.sequenceNumber ?? record.dynamodb?.SequenceNumber ?? record.sequenceNumber;
  const sub = record.dynamodb ? undefined : subSequenceNumber(record);
  return sub === undefined ? sequence : `${sequence}:${sub}`;
}

/** The records of a JSON-world event or of a typed-world batch. */
export function records(eventOrBatch) {
  if (Array.isArray(eventOrBatch.Records)) return eventOrBatch.Records;
  return eventOrBatch.records?.val ?? [];
}

/**
 * Runs `handle(record)` for each record in order; a record whose `handle`
 * throws is reported as a batch item failure (with ReportBatchItemFailures on,
 * the host retries from the first of them). Returns Lambda's response.
 */
export async function processBatch(eventOrBatch, handle) {
  const batchItemFailures = [];
  const all = records(eventOrBatch);
  // Indexed: a for-of over an array costs a few µs a step in the engine's interpreter.
  for (let i = 0; i < all.length; i++) {
    const record = all[i];
    try {
      await handle(record);
    } catch (error) {
      log.warn(`record ${itemIdentifier(record)} failed: ${error?.message ?? error}`);
      batchItemFailures.push({ itemIdentifier: itemIdentifier(record) });
    }
  }
  return { batchItemFailures };
}

/** Lambda's Node.js context object, from the invocation's WIT context. */
export function lambdaContext(context) {
  const name = context.functionName;
  return {
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: String(context.memoryLimitMb),
    awsRequestId: context.requestId,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: context.requestId,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Number(remainingTimeMs()),
  };
}

/**
 * An iterator over an array, as the array's own would be (it reads `length` at
 * each step, so items pushed while iterating are visited too).
 */
class ArrayWalk {
  constructor(array) {
    this.array = array;
    this.index = 0;
  }

  next() {
    const index = this.index;
    if (index < this.array.length) {
      this.index = index + 1;
      return { value: this.array[index], done: false };
    }
    return { value: undefined, done: true };
  }

  [Symbol.iterator]() {
    return this;
  }
}

function walk() {
  return new ArrayWalk(this);
}

/**
 * Gives the event's `Records` an iterator of its own for `for (const record of
 * event.Records)`. The engine runs without a JIT, and its array iterator's
 * `next()` is self-hosted code that calls several intrinsics per step: 2–3.5 µs
 * a record here, against 1–2 µs for this one (BENCHMARKS.md). The
 * property is a symbol and not enumerable, so keys, JSON and spreads of the
 * array are unchanged.
 */
function iterateQuickly(records) {
  if (Array.isArray(records)) {
    Object.defineProperty(records, Symbol.iterator, { value: walk, writable: true, configurable: true, enumerable: false });
  }
}

/** Lambda's error response text for a thrown value. */
function failure(error) {
  return JSON.stringify({ errorType: error?.name ?? 'Error', errorMessage: String(error?.message ?? error) });
}

/**
 * The JSON world's export for `async (event, context) => response`: the event
 * parsed, the response (any JSON value; undefined is sent as null) serialized, and
 * a thrown error made a function error.
 */
export function jsonHandler(handle) {
  return {
    async handle(event, context) {
      try {
        const parsed = JSON.parse(event);
        iterateQuickly(parsed?.Records);
        const response = await handle(parsed, lambdaContext(context));
        // As Lambda's Node.js runtime: undefined is sent as null, every other
        // value (0, '', false, [], {}) as its JSON.
        return JSON.stringify(response === undefined ? null : response);
      } catch (error) {
        throw failure(error);
      }
    },
  };
}

/**
 * The JSON world's export for a handler written for Lambda's Node.js runtime:
 * `async (event, context)`, or the older `(event, context, callback)`.
 */
export function lambdaHandler(handler) {
  if (typeof handler !== 'function') {
    throw new Error('the module exports no `handler` function (Lambda\'s `export const handler = async (event, context) => ...`)');
  }
  return jsonHandler((event, context) => {
    if (handler.length < 3) return handler(event, context);
    return new Promise((resolve, reject) => {
      const result = handler(event, context, (error, response) => (error ? reject(error) : resolve(response)));
      if (result && typeof result.then === 'function') result.then(resolve, reject);
    });
  });
}

/**
 * The typed world's export for `async (batch, context) => response`, where the
 * response is `{ batchItemFailures: [...] }` with sequence numbers or
 * `{ itemIdentifier }` objects, and optionally a window `state` string.
 */
export function typedHandler(handle) {
  return {
    async handle(batch, context) {
      try {
        const response = (await handle(batch, context)) ?? {};
        const failures = (response.batchItemFailures ?? []).map((f) => (typeof f === 'string' ? f : f.itemIdentifier));
        return { batchItemFailures: failures, state: response.state };
      } catch (error) {
        throw String(error?.message ?? error);
      }
    },
  };
}

/**
 * Skips records already processed, as Powertools' idempotency utility does:
 * each key (a record's `eventID`, or a field of it) is marked done in the
 * key-value table `table` (a name in the host's embedded store, or a DynamoDB
 * table ARN; the role needs `dynamodb:GetItem` and `dynamodb:PutItem` on it)
 * once its work succeeded, and a batch delivered again skips the keys marked
 * done. Marks last `ttlSeconds` (an hour unless told).
 *
 *   const processed = new Idempotency('processed-orders');
 *   await processBatch(event, (record) => processed.once(record.eventID, () => charge(record)));
 *
 * A crash between the work and its mark repeats that one key's work: work that
 * must happen exactly once whatever happens must itself be idempotent.
 */
export class Idempotency {
  constructor(table, { ttlSeconds = 3600 } = {}) {
    this.table = table;
    this.ttlMs = ttlSeconds * 1000;
  }

  /** Whether `key` is marked done, and the mark has not expired. */
  isDone(key) {
    const mark = kv.get(this.table, key);
    const expires = mark && /^done (\d+)$/.exec(utf8.decode(mark));
    return Boolean(expires) && Number(expires[1]) > Date.now();
  }

  /**
   * Runs `work` (it may be async) unless `key` is marked done, and marks it done
   * if `work` succeeds. Resolves to true if it ran now, false if it was done
   * before; a `work` that throws leaves no mark, and the error goes on.
   */
  async once(key, work) {
    if (this.isDone(key)) return false;
    await work();
    kv.set(this.table, key, new TextEncoder().encode(`done ${Date.now() + this.ttlMs}`));
    return true;
  }
}
