// One BullMQ Worker running no-op jobs at the given concurrency; exits
// after its n-th completion.
import { bullmq, connection } from './bullmq_common.mjs';

const [n, concurrency] = process.argv.slice(2).map(Number);
let done = 0;
const worker = new bullmq.Worker('bench', async () => null, { connection, concurrency });
worker.on('completed', async () => {
  if (++done === n) {
    await worker.close();
    process.exit(0);
  }
});
worker.on('error', (e) => console.error(e));
