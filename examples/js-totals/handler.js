// Totals per user in JavaScript, with Eddy's helpers (guest-sdk/js/eddy.js): a
// Kinesis record's partition key is the user and its data JSON such as
// {"amount": 12.5}; a DynamoDB record's NewImage has `user` and `amount`. A
// record that is not a sale throws, and comes back as a batch item failure.
import { dataJson, jsonHandler, log, processBatch } from 'eddy-handler';

function sale(record) {
  if (record.kinesis) {
    const { amount } = dataJson(record);
    return { user: record.kinesis.partitionKey, amount };
  }
  const image = record.dynamodb.NewImage;
  return { user: image.user?.S, amount: Number(image.amount?.N) };
}

export const json = jsonHandler(async (event, context) => {
  const totals = new Map();
  const response = await processBatch(event, (record) => {
    const { user, amount } = sale(record);
    if (!user || typeof amount !== 'number' || Number.isNaN(amount)) throw new Error('not a sale');
    totals.set(user, (totals.get(user) ?? 0) + amount);
  });
  const summary = [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([user, total]) => `${user}=${total}`);
  log.info(`js: ${event.Records.length} records, ${response.batchItemFailures.length} failed; totals ${summary.join(' ')}`,
    { function: context.functionName });
  return response;
});
