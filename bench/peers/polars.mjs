// Polars (nodejs-polars) on the formulas of `deeprc bench table` (see apps/deeprc/bench_command.cpp).
// Polars sizes its own thread pool from POLARS_MAX_THREADS, which must be set before it loads:
// the runner sets it to --threads.
import { parseArgs, measure, csvPath, requireFile } from './common.mjs';

const options = parseArgs(process.argv.slice(2));
if (process.env.POLARS_MAX_THREADS !== String(options.threads)) {
  throw new Error(`set POLARS_MAX_THREADS=${options.threads} to run Polars with --threads ${options.threads}`);
}
const { default: pl } = await import('nodejs-polars');
const n = options.rows;

function int64Series(name, value) {
  const values = new BigInt64Array(n);
  for (let i = 0; i < n; i++) values[i] = value(BigInt(i));
  return pl.Series(name, values);
}
const sumOf = (frame, column) => BigInt(frame.getColumn(column).sum());

const prepare = {
  join: () => {
    const N = BigInt(n);
    const left = pl.DataFrame([int64Series('k', (i) => (i * 7919n) % N), int64Series('a', (i) => i)]);
    const right = pl.DataFrame([int64Series('k', (i) => (i * 104729n) % N), int64Series('b', (i) => i)]);
    return {
      run: () => left.join(right, { on: 'k', how: 'inner' }),
      checksum: (out) => sumOf(out, 'a') + 2n * sumOf(out, 'b'),
    };
  },
  groupby: () => {
    const frame = pl.DataFrame([int64Series('g', (i) => (i * 7919n) % 100000n), int64Series('v', (i) => i)]);
    return {
      run: () => frame.groupBy('g').agg(pl.col('v').sum().alias('s')),
      checksum: (out) => 31n * sumOf(out, 'g') + sumOf(out, 's'),
    };
  },
  sort: () => {
    const frame = pl.DataFrame([int64Series('s', (i) => (i * 2654435761n) % 1000000007n)]);
    return {
      run: () => frame.sort('s'),
      checksum: (out) => {
        const s = out.getColumn('s').toArray();
        let sum = 0n;
        for (let i = 0; i < s.length; i++) sum = BigInt.asUintN(64, sum + BigInt(i) * BigInt(s[i]));
        return sum;
      },
    };
  },
  unique: () => {
    const distinct = BigInt(Math.max(1, Math.floor(n / 4)));
    const frame = pl.DataFrame([int64Series('u', (i) => (i * 7919n) % distinct)]);
    return {
      run: () => frame.unique(),
      checksum: (out) => sumOf(out, 'u'),
    };
  },
  'csv-read': () => {
    const path = csvPath(options);
    requireFile(path);
    return {
      run: () => pl.readCSV(path, { tryParseDates: true }),
      checksum: (out) => sumOf(out, 'id'),
    };
  },
  'csv-write': () => {
    const path = options.path || '/tmp/polars_bench_write.csv';
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india',
      'juliett', 'kilo', 'lima', 'mike', 'november'];
    const price = new Float64Array(n);
    const name = new Array(n);
    const day = new Array(n);
    const note = new Array(n);
    const ratio = new Array(n);
    for (let i = 0; i < n; i++) {
      price[i] = ((i * 104729) % 10000000) / 100;
      name[i] = `${words[i % 14]}_${(i * 13) % 1000}`;
      day[i] = new Date(((i * 7) % 20000) * 86400000);
      note[i] = `${words[(i * 5) % 14]}${i % 4 === 0 ? ', ' : ' '}${i % 100}`;
      ratio[i] = i % 10 === 0 ? null : ((i * 17) % 1000000) / 7;
    }
    const frame = pl.DataFrame([
      int64Series('id', (i) => (i * 7919n) % 100000007n), pl.Series('price', price),
      int64Series('quantity', (i) => (i * 31n) % 20000n - 10000n), pl.Series('name', name),
      pl.Series('day', day).cast(pl.Date), pl.Series('note', note), pl.Series('ratio', ratio, pl.Float64)]);
    return {
      run: () => frame.writeCSV(path),
      checksum: () => n,
    };
  },
};

for (const op of options.ops) {
  if (!prepare[op]) throw new Error(`unknown operator ${op}`);
  await measure('polars', op, options, prepare[op]());
}
