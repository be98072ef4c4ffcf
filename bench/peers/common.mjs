// Shared by the Node peers: the options of `deeprc bench table` and its JSON line.
// Usage: node PEER.mjs OP [OP...] --rows N --threads T [--repeat R] [--path FILE]
import { existsSync } from 'node:fs';

export function parseArgs(argv) {
  const options = { ops: [], rows: 10000000, threads: 2, repeat: 3, path: '' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--rows') options.rows = Number(argv[++i]);
    else if (arg === '--threads') options.threads = Number(argv[++i]);
    else if (arg === '--repeat') options.repeat = Number(argv[++i]);
    else if (arg === '--path') options.path = argv[++i];
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else options.ops.push(arg);
  }
  if (!Number.isSafeInteger(options.rows) || options.rows <= 0) throw new Error('--rows must be a positive integer');
  if (options.ops.length === 0) throw new Error('no operator given (join, groupby, sort, unique, csv-read, csv-write)');
  return options;
}

// The CSV file csv-read reads: --path, or the one `deeprc bench table csv-read` writes.
export function csvPath(options) {
  const path = options.path || `/tmp/deeprc_bench_${options.rows}.csv`;
  return path;
}

export function requireFile(path) {
  if (!existsSync(path)) throw new Error(`${path} does not exist: write it first with deeprc bench table csv-read --rows N`);
}

// Runs `body` (which returns a checksum, maybe as a promise) `repeat` times and prints the median.
export async function measure(system, op, options, body) {
  const seconds = [];
  let checksum = 0n;
  for (let r = 0; r < options.repeat; r++) {
    const start = performance.now();
    const timed = await body.run();
    seconds.push((performance.now() - start) / 1000);
    checksum = BigInt.asUintN(64, BigInt(await body.checksum(timed)));
  }
  const first = seconds[0];
  seconds.sort((x, y) => x - y);
  const peak = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({
    system, op, rows: options.rows, threads: options.threads,
    seconds: Number(seconds[Math.floor(seconds.length / 2)].toFixed(4)),
    first_seconds: Number(first.toFixed(4)),
    peak_rss_mb: Number(peak.toFixed(1)), checksum: checksum.toString(),
  }).replace(/"checksum":"(\d+)"/, '"checksum":$1'));
}
