// Forwards each record to the local stream `delivered`, once, however often its
// batch is delivered: eddy.js's Idempotency marks each eventID done in the
// key-value table `processed-js-once` and skips the ones marked.
//
// To show it, a record whose data is `crash` makes the first delivery of its
// batch fail right after forwarding it: the host delivers the batch again, and
// the records up to the failure are skipped.
import { Idempotency, dataText, fromBase64, jsonHandler, log } from 'eddy-handler';
import { putRecord } from 'eddy:handler/streams@0.1.0';
import { compareAndSet } from 'eddy:handler/kv@0.1.0';

export const json = jsonHandler(async (event, context) => {
  const processed = new Idempotency('processed-js-once');
  let forwarded = 0;
  let skipped = 0;
  for (const record of event.Records) {
    const ran = await processed.once(record.eventID, () =>
      putRecord('delivered', record.kinesis.partitionKey, fromBase64(record.kinesis.data)));
    if (ran) forwarded++; else skipped++;
    // eventIDs are unique within a stream only: the flag's key names the function.
    const flag = `${context.functionName}/${record.eventID}`;
    if (dataText(record) === 'crash' && compareAndSet('once-demo', flag, undefined, new TextEncoder().encode('crashed'))) {
      throw new Error(`crashing midway through the batch, after ${forwarded + skipped} records`);
    }
  }
  log.info(`${context.functionName}: forwarded ${forwarded}, skipped ${skipped} already done`);
  return { batchItemFailures: [] };
});
