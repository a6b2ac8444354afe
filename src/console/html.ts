/**
 * A tagged template for server-rendered pages: every interpolated value is HTML-escaped unless it is
 * already `Html` (the output of another `html` template), so nothing from the API or the request can
 * inject markup.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** An instant as `2026-12-01 21:05:03 UTC`, in a <time> element; a dash for none. */
export function when(iso: string | number | null | undefined): Html {
  if (iso === null || iso === undefined || iso === '') return html`<span class="muted">—</span>`;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return html`${String(iso)}`;
  const text = date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, ' UTC');
  return html`<time datetime="${date.toISOString()}">${text}</time>`;
}

/** How long ago, in words a person scans: `45 s`, `12 min`, `3 h`, `2 d`. */
export function age(iso: string | number | null | undefined, now = Date.now()): string {
  if (iso === null || iso === undefined) return '';
  const ms = now - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
