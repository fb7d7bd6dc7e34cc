/**
 * `cfsroot preflight [--sysroot DIR] [--boot DIR] [--entry FILE] [--json]`:
 * one line per check (`OK name: ...` / `FAIL name: ... ; fix: ...`), or with
 * --json `{"ok":…,"checks":[{code,ok,message,fix}]}`. Exit 0 only when every
 * check passes.
 */

import * as path from 'node:path';
import { fail } from '../errors.js';
import type { Io } from '../io.js';
import { runPreflight, type Check } from './checks.js';

export async function commandPreflight(args: string[], io: Io): Promise<number> {
  let sysroot = '/sysroot';
  let boot: string | null = null;
  let entry: string | null = null;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (arg.startsWith('--') && eq > 0) return arg.slice(eq + 1);
      const v = args[++i];
      if (v === undefined) fail('EUSAGE', `preflight: option ${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--sysroot': sysroot = value(); break;
      case '--boot': boot = value(); break;
      case '--entry': entry = value(); break;
      case '--json': json = true; break;
      default: fail('EUSAGE', `preflight: unknown argument "${arg}" (see cfsroot --help)`);
    }
  }
  // ostree's /boot is the sysroot's boot/ (a separate partition mounted there).
  const bootDir = boot ?? path.join(sysroot, 'boot');
  await prepareAddon();
  const checks = await runPreflight({ sysroot, boot: bootDir, entry, measureVerity: verityMeasurer() });
  const ok = checks.every((c) => c.ok);
  if (json) io.out(JSON.stringify({ ok, checks }) + '\n');
  else io.out(checks.map(formatCheck).join(''));
  return ok ? 0 : 1;
}

export function formatCheck(c: Check): string {
  return c.ok ? `OK ${c.code}: ${c.message}\n` : `FAIL ${c.code}: ${c.message} ; fix: ${c.fix}\n`;
}

/** FS_IOC_MEASURE_VERITY through the addon; undefined when it cannot be loaded. */
function verityMeasurer(): ((file: string) => string | null) | undefined {
  return (file: string) => {
    const m = measurer();
    if (!m) return 'unsupported';
    return m(file);
  };
}

let cached: ((file: string) => string | null) | null | undefined;
function measurer(): ((file: string) => string | null) | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    const addon = loadAddonSync();
    if (addon?.measureVerity) cached = addon.measureVerity.bind(addon);
  } catch {
    cached = null;
  }
  return cached;
}

let loadAddonSync: () => import('../sys/native.js').NativeAddon | null = () => null;
export async function prepareAddon(): Promise<void> {
  const { loadNativeAddon } = await import('../sys/native.js');
  loadAddonSync = () => loadNativeAddon();
}
