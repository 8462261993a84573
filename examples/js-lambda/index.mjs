// A handler written for AWS Lambda's Node.js runtime, as it is: Eddy runs it
// after `guest-sdk/js/build.sh index.mjs out.wasm`, with no change to this file.
//
// Totals per user: a Kinesis record's partition key is the user and its data JSON
// such as {"amount": 12.5}; a DynamoDB record's NewImage has `user` and `amount`.
// Records that are not sales are reported in `batchItemFailures` (the mapping
// has ReportBatchItemFailures on).
export const handler = async (event, context) => {
  const totals = {};
  const batchItemFailures = [];
  for (const record of event.Records) {
    try {
      let user;
      let amount;
      if (record.kinesis) {
        const payload = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
        user = record.kinesis.partitionKey;
        amount = payload.amount;
      } else {
        const image = record.dynamodb.NewImage;
        user = image.user.S;
        amount = Number(image.amount.N);
      }
      if (typeof amount !== 'number' || Number.isNaN(amount)) {
        throw new Error(`not a sale: ${JSON.stringify(amount)}`);
      }
      totals[user] = (totals[user] ?? 0) + amount;
    } catch (err) {
      console.error(`skipping a record: ${err.message}`);
      batchItemFailures.push({ itemIdentifier: record.kinesis ? record.kinesis.sequenceNumber : record.dynamodb.SequenceNumber });
    }
  }
  const summary = Object.keys(totals).sort().map((user) => `${user}=${totals[user]}`).join(' ');
  console.log(`${context.functionName}: ${event.Records.length} records, ${batchItemFailures.length} failed; totals ${summary}`);
  console.log(`${context.getRemainingTimeInMillis()} ms left of ${context.memoryLimitInMB} MB, request ${context.awsRequestId}`);
  return { batchItemFailures };
};
