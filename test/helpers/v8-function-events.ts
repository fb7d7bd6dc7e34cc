/**
 * V8's function events (`--log-function-events`, the build of mk/bench.mk
 * compiles-build), read for one script: which of its functions a run
 * compiled, i.e. called for the first time in that run. Used by
 * bench/compiles.ts and test/integration/snapshot-warm.test.ts.
 */

export interface CompiledFunction {
  /** Character offsets of the function's source in the script. */
  start: number;
  end: number;
  /** As V8 logs it; "(anonymous)" for an arrow or unnamed function. */
  name: string;
  /** Milliseconds of its parse-function and interpreter (bytecode) events. */
  ms: number;
}

/**
 * The functions of the script whose URL ends in `scriptSuffix` that the
 * logged run compiled, by "start-end". Throws if no such script was logged.
 */
export function functionsCompiled(log: string, scriptSuffix: string): Map<string, CompiledFunction> {
  const lines = log.split('\n');
  // script-details,<id>,<url>,...
  const details = lines.find((l) => l.startsWith('script-details,') && (l.split(',')[2] ?? '').endsWith(scriptSuffix));
  if (!details) throw new Error(`the V8 log names no script ending in ${scriptSuffix}: was it written by a build with --log-function-events?`);
  const script = details.split(',')[1];
  const out = new Map<string, CompiledFunction>();
  for (const l of lines) {
    // function,<event>,<script>,<start>,<end>,<ms>,<timestamp>,<name>
    const f = l.split(',');
    if (f[0] !== 'function' || f[2] !== script || (f[1] !== 'parse-function' && f[1] !== 'interpreter')) continue;
    const key = `${f[3]}-${f[4]}`;
    const entry = out.get(key) ?? { start: Number(f[3]), end: Number(f[4]), name: f.slice(7).join(',') || '(anonymous)', ms: 0 };
    entry.ms += Number(f[5]);
    out.set(key, entry);
  }
  return out;
}
