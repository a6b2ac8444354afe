import { describe, expect, it } from 'vitest';
import { decideTransition, STATUS_CODES, type StatusCode } from '../../src/machines/order.machine.js';

/**
 * The specification of the status model (SPEC §2) as a table: for every (from, to) pair of codes,
 * what an operator may do, and what a partner event does.
 */
const MAIN_LINE: StatusCode[] = [1000, 1500, 2000, 3000, 3500, 3600, 3700, 7000, 7100, 7200, 7300, 7500];
const OPERATOR_ALLOWED = new Set<string>([
  ...MAIN_LINE.slice(0, -1).map((s, i) => `${s}>${MAIN_LINE[i + 1]}`),
  '7300>7400',
  '7400>7300',
  '7400>7200',
  '7400>7500',
  '7400>8500',
  ...[1000, 1500, 2000, 3000, 3500, 3600, 3700].map((s) => `${s}>9000`),
]);

describe('operator moves: one step at a time, or to 9000 before 7000', () => {
  for (const from of STATUS_CODES) {
    for (const to of STATUS_CODES) {
      const allowed = OPERATOR_ALLOWED.has(`${from}>${to}`);
      it(`${from} → ${to} is ${allowed ? 'allowed' : 'refused'}`, () => {
        const d = decideTransition(from, null, { type: 'OPERATOR_MOVE', to });
        if (allowed) expect(d).toEqual({ kind: 'moved', steps: [{ to, implied: false }], subStep: null });
        else expect(d.kind).toBe('invalid');
      });
    }
  }
});

describe('the admin override may go anywhere but where the order already is', () => {
  for (const from of STATUS_CODES) {
    for (const to of STATUS_CODES) {
      it(`${from} → ${to}`, () => {
        const d = decideTransition(from, null, { type: 'OVERRIDE', to });
        expect(d.kind).toBe(from === to ? 'invalid' : 'moved');
      });
    }
  }
});

const FULFILLMENT_TARGETS: StatusCode[] = [3500, 3600, 3700, 7000];
describe('ship events: forward along the main line with implied steps; behind is stale; in delivery or terminal is invalid', () => {
  for (const from of STATUS_CODES) {
    for (const to of FULFILLMENT_TARGETS) {
      const i = MAIN_LINE.indexOf(from);
      const j = MAIN_LINE.indexOf(to);
      const inFulfillment = i >= 0 && from <= 7000;
      const expected = !inFulfillment ? 'invalid' : j > i ? 'moved' : 'stale';
      it(`${from} → ${to} is ${expected}`, () => {
        const d = decideTransition(from, null, { type: 'SHIP_EVENT', to });
        expect(d.kind).toBe(expected);
        if (d.kind === 'moved') {
          const path = MAIN_LINE.slice(i + 1, j + 1);
          expect(d.steps).toEqual(path.map((s, k) => ({ to: s, implied: k < path.length - 1 })));
        }
      });
    }
  }
});

describe('the packing sub-step', () => {
  it('is applied at 3600 without it, stale once recorded', () => {
    expect(decideTransition(3600, null, { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' })).toEqual({ kind: 'moved', steps: [], subStep: 'packing' });
    expect(decideTransition(3600, 'packing', { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' })).toEqual({ kind: 'stale' });
  });
  it('moves an order behind 3600 to 3600 and records the sub-step', () => {
    expect(decideTransition(3000, null, { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' })).toEqual({
      kind: 'moved',
      steps: [
        { to: 3500, implied: true },
        { to: 3600, implied: false },
      ],
      subStep: 'packing',
    });
  });
  it('is cleared by the next status', () => {
    expect(decideTransition(3600, 'packing', { type: 'SHIP_EVENT', to: 3700 })).toEqual({
      kind: 'moved',
      steps: [{ to: 3700, implied: false }],
      subStep: null,
    });
  });
  it('is stale at 3700', () => {
    expect(decideTransition(3700, null, { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' })).toEqual({ kind: 'stale' });
  });
});

describe('delivery events', () => {
  const cases: Array<[StatusCode, StatusCode, 'moved' | 'stale' | 'invalid', StatusCode[]?]> = [
    [3700, 7100, 'invalid'],
    [7000, 7100, 'moved', [7100]],
    [7000, 7500, 'moved', [7100, 7200, 7300, 7500]],
    [7100, 7400, 'moved', [7200, 7300, 7400]],
    [7300, 7400, 'moved', [7400]],
    [7400, 7300, 'moved', [7300]],
    [7400, 7200, 'moved', [7200]],
    [7400, 7500, 'moved', [7500]],
    [7400, 8500, 'moved', [8500]],
    [7300, 7100, 'stale'],
    [7500, 7500, 'stale'],
    [7500, 7400, 'stale'],
    [7300, 8500, 'invalid'],
    [7500, 8500, 'invalid'],
    [9000, 7100, 'invalid'],
    // The parcel is back at the store: nothing the courier says moves a returned order again.
    [8500, 7500, 'invalid'],
    [8500, 7300, 'invalid'],
    [8500, 8500, 'invalid'],
  ];
  for (const [from, to, kind, path] of cases) {
    it(`${from} → ${to} is ${kind}`, () => {
      const d = decideTransition(from, null, { type: 'DELIVERY_EVENT', to });
      expect(d.kind).toBe(kind);
      if (d.kind === 'moved') expect(d.steps.map((s) => s.to)).toEqual(path);
    });
  }
});

describe('answers are kept per question', () => {
  it('gives the same answer the second time, and a kept answer cannot be changed by a caller', () => {
    const first = decideTransition(3000, null, { type: 'SHIP_EVENT', to: 3700 });
    const again = decideTransition(3000, null, { type: 'SHIP_EVENT', to: 3700 });
    expect(again).toEqual(first);
    expect(first).toEqual({
      kind: 'moved',
      subStep: null,
      steps: [
        { to: 3500, implied: true },
        { to: 3600, implied: true },
        { to: 3700, implied: false },
      ],
    });
    expect(() => (first.kind === 'moved' ? first.steps.push({ to: 7000, implied: false }) : 0)).toThrow(TypeError);
    expect(decideTransition(3000, null, { type: 'SHIP_EVENT', to: 3700 })).toEqual(again);
  });

  it('tells the packing sub-step apart from none', () => {
    expect(decideTransition(3600, null, { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' }).kind).toBe('moved');
    expect(decideTransition(3600, 'packing', { type: 'SHIP_EVENT', to: 3600, subStep: 'packing' }).kind).toBe('stale');
  });
});
