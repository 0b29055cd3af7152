// BullMQ is installed outside the repository (bench/compare.py passes its
// folder in COMPARE_NODE_DIR); the Redis port comes in COMPARE_REDIS_PORT.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.COMPARE_NODE_DIR, 'noop.js'));
export const bullmq = require('bullmq');
export const versions = {
  bullmq: require('bullmq/package.json').version,
  ioredis: require('ioredis/package.json').version,
  node: process.version,
};
export const connection = { host: '127.0.0.1', port: Number(process.env.COMPARE_REDIS_PORT) };
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
