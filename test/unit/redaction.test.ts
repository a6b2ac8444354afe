import { describe, expect, it } from 'vitest';
import { redact, REDACTED } from '../../src/integrations/redaction.js';

describe('redaction of credentials before audit and logs', () => {
  it('replaces values under credential-like keys, at any depth', () => {
    const input = { orderId: 'SO-1', token: 'abc', nested: { apiKey: 'k', 'X-Signature': 's', list: [{ password: 'p', ok: 1 }] }, Authorization: 'Bearer x' };
    expect(redact(input, [])).toEqual({
      orderId: 'SO-1',
      token: REDACTED,
      nested: { apiKey: REDACTED, 'X-Signature': REDACTED, list: [{ password: REDACTED, ok: 1 }] },
      Authorization: REDACTED,
    });
  });

  it('removes known secrets wherever they appear in strings', () => {
    const secret = 'super-secret-token-123';
    expect(redact({ message: `rejected token ${secret} for SO-1`, n: 3 }, [secret])).toEqual({ message: `rejected token ${REDACTED} for SO-1`, n: 3 });
    expect(redact(`https://x.test/cb?key=${secret}`, [secret])).toBe(`https://x.test/cb?key=${REDACTED}`);
  });

  it('leaves other values and short non-secrets alone', () => {
    expect(redact({ a: [1, 'two', null, true] }, ['abc'])).toEqual({ a: [1, 'two', null, true] });
  });
});
