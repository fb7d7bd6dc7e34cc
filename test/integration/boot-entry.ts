/**
 * What the boot runs, for the integration tests while dist/cfsroot (the
 * lead's src/boot.ts + SEA build) is not there: decide -> plan -> execute
 * with the mount(8) backend, exit 1 with one `cfsroot: ` line on failure.
 * Prints the per-step timings as JSON on stdout (the measurement).
 */
import { decideBoot } from '../../src/ostree/decide.js';
import { CfsError } from '../../src/errors.js';
import { log } from '../../src/log.js';
import { detectPlanEnv } from '../../src/plan/steps.js';
import { planMounts } from '../../src/ostree/plan.js';
import { executePlan } from '../../src/plan/execute.js';
import { spawnSys } from '../../src/sys/spawn.js';

async function main(): Promise<void> {
  const [sysroot, cmdline] = process.argv.slice(2);
  if (!sysroot || cmdline === undefined) throw new CfsError('EUSAGE', 'usage: cfsroot SYSROOT CMDLINE');
  const t0 = process.hrtime.bigint();
  const d = await decideBoot({ sysroot, cmdline, initramfsRoot: '/', measure: false });
  for (const w of d.warnings) log.warn(w);
  const steps = planMounts(d, detectPlanEnv(d));
  const t1 = process.hrtime.bigint();
  const r = await executePlan(steps, spawnSys(), { timed: true });
  const t2 = process.hrtime.bigint();
  process.stdout.write(
    JSON.stringify({ decideMs: Number(t1 - t0) / 1e6, executeMs: Number(t2 - t1) / 1e6, steps: r.steps }) + '\n',
  );
}

main().catch((e: unknown) => {
  const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', String(e));
  log.error(`${err.code}: ${err.message}`);
  process.exitCode = 1;
});
