/**
 * Removes credentials from anything about to be stored or logged: values under keys that name a
 * credential, and any occurrence of a known secret (partner tokens, API keys) inside other strings.
 */
const SECRET_KEY = /(token|secret|password|passwd|authorization|api[-_]?key|signature|credential|cookie)/i;
export const REDACTED = '[redacted]';

export function redact(value: unknown, knownSecrets: readonly string[], depth = 0): unknown {
  if (depth > 20) return REDACTED;
  if (typeof value === 'string') {
    let out = value;
    for (const secret of knownSecrets) if (secret.length >= 8 && out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, knownSecrets, depth + 1));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? REDACTED : redact(v, knownSecrets, depth + 1)]),
    );
  }
  return value;
}
