// DuckDB's read_csv on the same file as bench/csv_bench.cpp, as a peer: one JSON line per read.
// Usage: node csv_read_duckdb.mjs FILE THREADS [REPEATS]
// Needs @duckdb/node-api (bench/csv_read_compare.sh installs it under bench/peers/node_modules).
import { DuckDBInstance } from '@duckdb/node-api';

const [path, threads = '1', repeats = '3'] = process.argv.slice(2);
const instance = await DuckDBInstance.create(':memory:', { threads: String(threads) });
const connection = await instance.connect();
const quoted = path.replaceAll("'", "''");
for (let i = 0; i < Number(repeats); ++i) {
  const start = process.hrtime.bigint();
  await connection.run(`CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('${quoted}')`);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rows = Number((await connection.runAndReadAll('SELECT count(*) FROM t')).getRows()[0][0]);
  console.log(JSON.stringify({ peer: 'duckdb', op: 'read_csv', threads: Number(threads), seconds, rows }));
}
