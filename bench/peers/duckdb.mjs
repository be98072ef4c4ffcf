// DuckDB (@duckdb/node-api) on the formulas of `deeprc bench table` (see apps/deeprc/bench_command.cpp).
// Results are materialized as tables, as deeprc's operators return tables.
import { DuckDBInstance } from '@duckdb/node-api';
import { parseArgs, measure, csvPath, requireFile } from './common.mjs';

const options = parseArgs(process.argv.slice(2));
const n = options.rows;
const instance = await DuckDBInstance.create(':memory:', { threads: String(options.threads) });
const con = await instance.connect();
const scalar = async (sql) => (await con.runAndReadAll(sql)).getRows()[0][0];

const prepare = {
  join: async () => {
    await con.run(`create or replace table l as select (i * 7919) % ${n} as k, i as a from range(${n}) t(i)`);
    await con.run(`create or replace table r as select (i * 104729) % ${n} as k, i as b from range(${n}) t(i)`);
    return {
      run: () => con.run('create or replace table o as select l.k, a, b from l join r on l.k = r.k'),
      checksum: () => scalar('select sum(a + 2 * b)::hugeint % 18446744073709551616 from o'),
    };
  },
  groupby: async () => {
    await con.run(`create or replace table g as select (i * 7919) % 100000 as g, i as v from range(${n}) t(i)`);
    return {
      run: () => con.run('create or replace table o as select g, sum(v) as s from g group by g'),
      checksum: () => scalar('select sum(g * 31 + s)::hugeint % 18446744073709551616 from o'),
    };
  },
  sort: async () => {
    await con.run(`create or replace table s as select (i * 2654435761) % 1000000007 as s from range(${n}) t(i)`);
    return {
      run: () => con.run('create or replace table o as select s from s order by s'),
      // Insertion order is kept, so rowid is the position in the sorted output.
      checksum: () => scalar('select sum(rowid::hugeint * s) % 18446744073709551616 from o'),
    };
  },
  unique: async () => {
    const distinct = Math.max(1, Math.floor(n / 4));
    await con.run(`create or replace table u as select (i * 7919) % ${distinct} as u from range(${n}) t(i)`);
    return {
      run: () => con.run('create or replace table o as select distinct u from u'),
      checksum: () => scalar('select sum(u)::hugeint % 18446744073709551616 from o'),
    };
  },
  'csv-read': async () => {
    const path = csvPath(options);
    requireFile(path);
    return {
      run: () => con.run(`create or replace table o as select * from read_csv('${path}')`),
      checksum: () => scalar('select sum(id)::hugeint % 18446744073709551616 from o'),
    };
  },
  'csv-write': async () => {
    const path = options.path || '/tmp/duckdb_bench_write.csv';
    const words = `['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india',
                    'juliett', 'kilo', 'lima', 'mike', 'november']`;
    await con.run(`create or replace table m as select
        i * 7919 % 100000007 as id, (i * 104729 % 10000000) / 100 as price,
        i * 31 % 20000 - 10000 as quantity, ${words}[i % 14 + 1] || '_' || (i * 13 % 1000) as name,
        date '1970-01-01' + (i * 7 % 20000)::int as day,
        ${words}[i * 5 % 14 + 1] || case when i % 4 = 0 then ', ' else ' ' end || (i % 100) as note,
        case when i % 10 = 0 then null else (i * 17 % 1000000) / 7 end as ratio
      from range(${n}) t(i)`);
    return {
      run: () => con.run(`copy m to '${path}' (header, delimiter ',')`),
      checksum: () => n,
    };
  },
};

for (const op of options.ops) {
  if (!prepare[op]) throw new Error(`unknown operator ${op}`);
  await measure('duckdb', op, options, await prepare[op]());
}
