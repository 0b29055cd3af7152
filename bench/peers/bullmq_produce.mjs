// Fills the backlog: n no-op jobs added one by one, each awaited (each
// call's latency recorded); prints {"filled": ...} and waits for a line on
// stdin (bench/compare.py reads Redis's counters meanwhile); then times
// getJobState() of the first `nStatus` and prints the results as one JSON
// line.
import readline from 'node:readline';
import { bullmq, connection, nowMs, versions } from './bullmq_common.mjs';

const [n, nStatus] = process.argv.slice(2).map(Number);
const q = new bullmq.Queue('bench', { connection });
await q.waitUntilReady();
const enqueue = [], ids = [];
const started = nowMs();
for (let i = 0; i < n; i++) {
  const t = nowMs();
  const job = await q.add('noop', { i });
  enqueue.push(nowMs() - t);
  if (ids.length < nStatus) ids.push(job.id);
}
const enqueueS = (nowMs() - started) / 1000;
console.log(JSON.stringify({ filled: n, enqueue_s: enqueueS }));
const stdin = readline.createInterface({ input: process.stdin });
for await (const _ of stdin) break;
stdin.close();
process.stdin.destroy();
const status = [];
for (const id of ids) {
  const t = nowMs();
  const state = await q.getJobState(id);
  status.push(nowMs() - t);
  if (state !== 'waiting') throw new Error(`job ${id} is ${state}, not waiting`);
}
await q.close();
// Exits once the line is written (the readline on stdin would keep it alive).
process.stdout.write(JSON.stringify({ enqueue_s: enqueueS, enqueue_ms: enqueue, status_ms: status, versions }) + '\n',
  () => process.exit(0));
