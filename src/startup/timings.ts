/**
 * Where a boot's time goes (issue 5): `$CFSROOT_TIMINGS=1` makes the boot
 * log one extra line with the milliseconds of each phase, which `make bench`
 * collects. Off by default, and then every `mark` is a single comparison.
 * Module state is set per run by `startTimings` (never at module level: the
 * startup snapshot would freeze it).
 */

let marks: Array<[string, number]> | null = null;
let last = 0;

/** Milliseconds on the monotonic clock. (Not `performance.now()`: its first use loads perf_hooks, ~1.5 ms.) */
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Start recording; the first entry is the time since the process started. */
export function startTimings(): void {
  last = now();
  marks = [['start', process.uptime() * 1000]];
}

/** Close the phase that ran since the previous mark, under `name`. */
export function mark(name: string): void {
  if (marks === null) return;
  const t = now();
  marks.push([name, t - last]);
  last = t;
}

/** "start 35.12, kargs 0.05, ..." or null when not recording. */
export function timingsReport(): string | null {
  return marks === null ? null : marks.map(([n, ms]) => `${n} ${ms.toFixed(2)}`).join(', ');
}
