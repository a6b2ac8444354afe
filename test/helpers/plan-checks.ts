/**
 * Whether a query plan reads one of `tables` whole: the lines of its sequential scans, and of its
 * index scans without an index condition (every entry of the index, which is as bad). Plans are
 * EXPLAIN's text output, one line per element.
 */
export function wholeTableReads(plan: readonly string[], tables: readonly string[]): string[] {
  const scanOf = new RegExp(`(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)( Backward)?( using \\S+)? on (${tables.join('|')})\\b`);
  return plan.filter((line, i) => {
    const scan = scanOf.exec(line);
    if (!scan) return false;
    if (scan[1] === 'Seq Scan') return true;
    const details: string[] = [];
    for (const next of plan.slice(i + 1)) {
      if (next.includes('->')) break;
      details.push(next);
    }
    return !details.some((d) => d.includes('Index Cond:'));
  });
}
