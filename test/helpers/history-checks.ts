import { expect } from 'vitest';
import type { TestHub } from './test-hub.js';

/** History is sequential: seq 1..n, each row starts where the previous ended, no transition twice. */
export async function expectSequentialHistory(hub: TestHub, orderId: string): Promise<Array<Record<string, any>>> {
  const res = await hub.clients.viewer.get(`/api/orders/${orderId}/history`);
  const rows = res.body.history as Array<Record<string, any>>;
  expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
  for (let i = 1; i < rows.length; i++) expect(rows[i]!.from, `${orderId} row ${i + 1}`).toBe(rows[i - 1]!.to);
  const keys = rows.map((r) => `${r.from}>${r.to}:${r.subStep ?? ''}`);
  expect(new Set(keys).size, `${orderId} has a repeated transition: ${keys.join(' ')}`).toBe(keys.length);
  return rows;
}
