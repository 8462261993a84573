// The scenario of tests/languages.rs in JavaScript's typed world: the records
// come as WIT gives them (data as bytes, no base64, no JSON event to parse).
import { dataJson, log, processBatch, typedHandler } from 'eddy-handler';

export const typed = typedHandler(async (batch, context) => {
  const totals = new Map();
  const response = await processBatch(batch, (record) => {
    const { amount } = dataJson(record);
    if (typeof amount !== 'number') throw new Error('not a sale');
    totals.set(record.partitionKey, (totals.get(record.partitionKey) ?? 0) + amount);
  });
  const summary = [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([user, total]) => `${user}=${total}`);
  const count = batch.records.val.length;
  log.info(`${context.functionName}: ${count} records, ${response.batchItemFailures.length} failed; totals ${summary.join(' ')}`);
  return response;
});
