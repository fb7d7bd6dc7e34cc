/**
 * Node's environment variables are not cfsroot's input (issue 12).
 *
 * The executable ignores NODE_OPTIONS (sea-config execArgvExtension "none")
 * and has its V8 flags baked in (execArgv). Node still reads other variables
 * before any JavaScript runs: NODE_V8_COVERAGE starts coverage and writes a
 * file at exit, UV_THREADPOOL_SIZE sizes libuv's pool, NODE_ICU_DATA,
 * OPENSSL_CONF… None of that can be undone from here. So when any of them is
 * set, the single executable starts itself again, once, without them: the
 * addon's bare execve(2) (Node's process.execve would first end the
 * coverage profiler, which writes its file). The second start sees none and
 * goes on. Systemd's initrd and a busybox init set none, so the boot never
 * pays for it. Where that cannot be done (run from source, no addon) the
 * variables are at least removed from process.env, so nothing that reads
 * one later and no child process (mount(8) under CFSROOT_SYS=spawn) sees it.
 */

import { isSea } from 'node:sea';
import { loadNativeAddon } from '../sys/native.js';

/**
 * The names in `env` that Node itself, libuv or OpenSSL read; cfsroot's own
 * knobs are CFSROOT_*. (startsWith, not a regular expression: a snapshot
 * keeps no compiled expression, and every run, --version too, pays for
 * compiling one.)
 */
export function nodeVariables(env: NodeJS.ProcessEnv): string[] {
  const names: string[] = [];
  for (const name in env) {
    if (name.startsWith('NODE_') || name.startsWith('UV_') || name.startsWith('OPENSSL_')) names.push(name);
  }
  return names;
}

export function ignoreNodeEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const names = nodeVariables(env);
  if (names.length === 0) return;
  for (const name of names) delete env[name];
  if (!isSea()) return;
  try {
    const envp = Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`);
    // argv: the executable's own argv[0], then the command's arguments (a SEA's argv[1] is execPath again).
    loadNativeAddon()?.execve?.(process.execPath, [process.argv0, ...process.argv.slice(2)], envp);
  } catch {
    // No addon, or execve(2) refused: go on in this process, the variables removed from process.env.
  }
}
