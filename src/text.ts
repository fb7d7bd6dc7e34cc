/**
 * Character-class checks for the boot path, written as loops rather than
 * regular expressions. The startup snapshot (src/startup/sea.ts) keeps
 * compiled functions but no compiled expression: each expression a boot
 * uses is compiled again in that boot, about 50-100 us apiece (measured,
 * bench (a')). Each function here says the expression it stands for.
 */

/** /^[0-9a-f]*$/ (and exactly `length` characters when given). */
export function isLowerHex(s: string, length?: number): boolean {
  if (length !== undefined && s.length !== length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/** /^[0-9a-fA-F]*$/ */
export function isHex(s: string): boolean {
  return isLowerHex(asciiLower(s));
}

/** A control character's UTF-16 code: /[\x00-\x1f\x7f]/ */
export function isControlCode(c: number): boolean {
  return c < 0x20 || c === 0x7f;
}

/** /^[0-9]+$/ */
export function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** /^[A-Za-z0-9]*$/ (and exactly `length` characters when given). */
export function isAlnum(s: string, length?: number): boolean {
  if (length !== undefined && s.length !== length) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnumCode(c)) return false;
  }
  return true;
}

const isAlnumCode = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** /^[A-Za-z0-9+/]*={0,2}$/: the standard base64 alphabet, then at most two '='. */
export function isBase64Text(s: string): boolean {
  let end = s.length;
  if (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  if (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!(isAlnumCode(c) || c === 0x2b || c === 0x2f)) return false;
  }
  return true;
}

/** s.replace(/[A-Z]/g, lower): ASCII letters only, as GLib's g_ascii_strdown. */
export function asciiLower(s: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x41 || c > 0x5a) continue;
    out += s.slice(from, i) + String.fromCharCode(c + 0x20);
    from = i + 1;
  }
  return from === 0 ? s : out + s.slice(from);
}
