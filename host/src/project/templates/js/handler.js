// {{name}}: each record's data is an order as JSON, such as {"amount": 12.5}.
// A record that is not one throws, and comes back as a batch item failure, so
// the host retries from it. Build with `eddy build .`; try with
// `eddy generate-event kinesis --data '{"amount": 3}' > event.json` and
// `eddy invoke functions/{{name}}.wasm --event event.json`.
import { dataJson, jsonHandler, log, processBatch } from 'eddy-handler';

export const json = jsonHandler(async (event, context) => {
  let total = 0;
  const response = await processBatch(event, (record) => {
    const { amount } = dataJson(record);
    if (typeof amount !== 'number') throw new Error('not an order');
    total += amount;
  });
  log.info(`${context.functionName}: ${event.Records.length} records, ${response.batchItemFailures.length} failed; total ${total}`);
  return response;
});
