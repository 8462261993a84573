// Where a JavaScript record's time goes inside the component: each step of a
// Lambda Kinesis handler timed on its own, in µs per record, over the event's
// 100 records. Built and run with:
//
//   python3 tests/benches/js-costs/event.py > /tmp/event100.json
//   guest-sdk/js/build.sh tests/benches/js-costs/index.mjs /tmp/js-costs.wasm
//   eddy invoke --timeout 60 --event /tmp/event100.json /tmp/js-costs.wasm
//
// The response is the table (BENCHMARKS.md, "JavaScript: where a record's time
// goes"). The engine runs without a JIT, so steps that are native code in Node
// (an array iterator, a derived class's constructor) run as interpreted
// self-hosted code here.
const perRecord = (records, rounds, step) => {
  const started = performance.now();
  for (let round = 0; round < rounds; round++) step();
  return +(((performance.now() - started) * 1000) / rounds / records).toFixed(2);
};

export const handler = async (event) => {
  const records = event.Records;
  const n = records.length;
  const plain = records.slice(); // a plain array: the engine's own iterator
  const walked = records; // the SDK's jsonHandler gave event.Records its own
  const text = JSON.stringify(event);
  const decoder = new TextDecoder();
  const bytes = plain.map((r) => Uint8Array.fromBase64(r.kinesis.data));
  const buffers = plain.map((r) => Buffer.from(r.kinesis.data, 'base64'));
  const texts = bytes.map((b) => decoder.decode(b));
  const rounds = 300;
  return {
    unit: 'µs per record',
    'JSON.parse of the whole event': perRecord(n, 30, () => JSON.parse(text)),
    'for-of, the engine\'s array iterator': perRecord(n, rounds, () => { let k = 0; for (const r of plain) k++; return k; }),
    'for-of, an iterator written in JS (as the SDK puts on event.Records)': perRecord(n, rounds, () => { let k = 0; for (const r of walked) k++; return k; }),
    'indexed loop': perRecord(n, rounds, () => { let k = 0; for (let i = 0; i < plain.length; i++) k += plain[i] ? 1 : 0; return k; }),
    "Buffer.from(data, 'base64')": perRecord(n, rounds, () => { for (let i = 0; i < n; i++) Buffer.from(plain[i].kinesis.data, 'base64'); }),
    'Uint8Array.fromBase64(data)': perRecord(n, rounds, () => { for (let i = 0; i < n; i++) Uint8Array.fromBase64(plain[i].kinesis.data); }),
    "buffer.toString('utf8')": perRecord(n, rounds, () => { for (let i = 0; i < n; i++) buffers[i].toString('utf8'); }),
    'TextDecoder.decode(bytes)': perRecord(n, rounds, () => { for (let i = 0; i < n; i++) decoder.decode(bytes[i]); }),
    'JSON.parse of a record\'s data': perRecord(n, rounds, () => { for (let i = 0; i < n; i++) JSON.parse(texts[i]); }),
    'a function call': perRecord(n, rounds, () => { const f = (a) => a; for (let i = 0; i < n; i++) f(i); }),
  };
};
