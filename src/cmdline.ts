/**
 * Kernel command line parsing (SPEC §1 "Kernel command line").
 *
 * Follows the kernel's own tokeniser (lib/cmdline.c next_arg) closely enough
 * that every argument user space can see in /proc/cmdline is read the way the
 * kernel read it:
 *  - arguments are separated by runs of whitespace (space, tab, newline, CR,
 *    VT, FF: the kernel's isspace), so the trailing newline of /proc/cmdline
 *    is just one more separator;
 *  - a double quote toggles "inside quotes", where whitespace does not split;
 *    there is no escape character, and an unterminated quote runs to the end;
 *  - the quote characters themselves are removed.
 *
 * One deliberate simplification: the kernel strips only a quote at the start
 * of the argument or of the value (and its partner at the very end), so a
 * quote in the middle (`a"b c"d`) keeps its quote characters there. We remove
 * every quote. The two forms people write (`key="a b"`, `"key=a b"`) give the
 * same result either way, and nothing cfsroot reads can contain a `"`.
 *
 * The first `=` separates key and value; a bare `key` has value null and
 * `key=` has the empty string. The first occurrence of a key wins, which is
 * what ostree-prepare-root's key lookup does (it scans left to right and
 * stops at the first match); `all` keeps the later ones, so a caller can
 * refuse a repeated argument instead of silently ignoring it.
 */

import type { KernelArgs } from './ostree/model.js';

/** The kernel's isspace() set for command line splitting. */
function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';
}

/** Split a command line into raw arguments, quotes removed. */
export function splitKernelCmdline(text: string): string[] {
  const args: string[] = [];
  let current = '';
  // A token can be just `""`: it exists (an empty argument) even though no
  // character survives, so track "started" separately from current.length.
  let started = false;
  let inQuote = false;
  for (const c of text) {
    if (c === '"') {
      inQuote = !inQuote;
      started = true;
    } else if (!inQuote && isSpace(c)) {
      if (started) args.push(current);
      current = '';
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (started) args.push(current);
  return args;
}

/**
 * Parse kernel command line text (e.g. the content of /proc/cmdline) into a
 * key -> value map. Never throws: any string is a valid command line.
 */
export function parseKernelCmdline(text: string): KernelArgs {
  const out = new KernelArgMap();
  for (const arg of splitKernelCmdline(text)) {
    const eq = arg.indexOf('=');
    const key = eq < 0 ? arg : arg.slice(0, eq);
    const value = eq < 0 ? null : arg.slice(eq + 1);
    // An argument like `=x` or `""` has no key; nothing can look it up.
    if (key === '') continue;
    out.add(key, value);
  }
  return out;
}

/** The first value of each key, plus every value of it in order. */
class KernelArgMap extends Map<string, string | null> implements KernelArgs {
  readonly #every = new Map<string, (string | null)[]>();

  add(key: string, value: string | null): void {
    const seen = this.#every.get(key);
    if (seen) seen.push(value);
    else {
      this.#every.set(key, [value]);
      this.set(key, value);
    }
  }

  all(key: string): readonly (string | null)[] {
    return this.#every.get(key) ?? [];
  }
}

/** Render one argument back for messages: `key`, `key=value`. */
export function formatKarg(key: string, value: string | null): string {
  return value === null ? key : `${key}=${value}`;
}
