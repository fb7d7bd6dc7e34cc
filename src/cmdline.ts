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

/** Split a command line into raw arguments, quotes removed. */
export function splitKernelCmdline(text: string): string[] {
  // By UTF-16 code unit, taking each run of plain characters with one slice:
  // a boot runs this once, on cold code, where a call and a string append per
  // character cost it about 0.1 ms. (A quote and the kernel's isspace() set,
  // space and \t \n \v \f \r, are ASCII, so no surrogate pair is split.)
  const args: string[] = [];
  let current = ''; // the argument up to `from`, quotes removed
  let from = 0;
  // A token can be just `""`: it exists (an empty argument) even though no
  // character survives, so track "started" separately from current.length.
  let started = false;
  let inQuote = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      current += text.slice(from, i);
      from = i + 1;
      inQuote = !inQuote;
      started = true;
    } else if (!inQuote && (c === 0x20 || (c >= 0x09 && c <= 0x0d))) {
      if (started) args.push(current + text.slice(from, i));
      current = '';
      from = i + 1;
      started = false;
    } else {
      started = true;
    }
  }
  if (started) args.push(current + text.slice(from));
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
