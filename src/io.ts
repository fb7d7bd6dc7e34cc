/**
 * Where a command's output goes: standard output and standard error, or a
 * test's capture. Its own module so that the boot (src/boot.ts) and the
 * command line (src/cli.ts) both use it without importing each other.
 */

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}
