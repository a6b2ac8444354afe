import { PgDialect } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { asDrizzle, statement } from '../../src/db/pipelined-transaction.js';

/** Hand-written statements (src/db/pipelined-transaction.ts): the text fixed, the values its parameters. */
describe('statement', () => {
  it('numbers each interpolated value as the next parameter, the same text whatever the values', () => {
    const of = (ids: string[], n: number) => statement`select * from orders where order_id = any(${ids}::text[]) and version > ${n}::int`;
    const a = of(['A', 'B'], 1);
    const b = of(['C'], 7);
    expect(a).toMatchObject({ sql: 'select * from orders where order_id = any($1::text[]) and version > $2::int', params: [['A', 'B'], 1] });
    expect(b.sql).toBe(a.sql);
    expect(b.params).toEqual([['C'], 7]);
  });

  it('splices a statement into another, its parameters renumbered after those before it', () => {
    const inner = statement`insert into t (a, b) select * from unnest(${['x']}::text[], ${[1]}::int[]) returning a`;
    const outer = statement`with w as (${inner}) select ${'k'}::text, (select count(*) from w) where ${2}::int > 0`;
    expect(outer.sql).toBe(
      'with w as (insert into t (a, b) select * from unnest($1::text[], $2::int[]) returning a) select $3::text, (select count(*) from w) where $4::int > 0',
    );
    expect(outer.params).toEqual([['x'], [1], 'k', 2]);
    const before = statement`select ${'first'}::text, (${inner})`;
    expect(before.sql).toBe('select $1::text, (insert into t (a, b) select * from unnest($2::text[], $3::int[]) returning a)');
    expect(before.params).toEqual(['first', ['x'], [1]]);
    // Any {sql, params} is a statement to splice, never a value.
    const plain = { sql: 'select $1::int', params: [7] };
    expect(statement`with p as (${plain}) select ${'z'}::text`).toMatchObject({ sql: 'with p as (select $1::int) select $2::text', params: [7, 'z'] });
  });

  it('renders as drizzle SQL with the same text and parameters, a parameter used twice passed twice', () => {
    const s = statement`update orders o set version = v.version from unnest(${['A']}::text[], ${[2]}::int[]) as v(order_id, version) where o.order_id = v.order_id`;
    const twice = { sql: 'select $1::text[] where $2::int = 1 and $1::text[] is not null', params: [['A'], 1] };
    const dialect = new PgDialect();
    expect(dialect.sqlToQuery(asDrizzle(s))).toMatchObject({ sql: s.sql, params: s.params });
    const rendered = dialect.sqlToQuery(asDrizzle(twice));
    expect(rendered.sql).toBe('select $1::text[] where $2::int = 1 and $3::text[] is not null');
    expect(rendered.params).toEqual([['A'], 1, ['A']]);
  });
});
