/**
 * Typed errors. Every refusal cfsroot makes is a CfsError: a stable code a
 * script can match on, and a one-line message a person can act on (what,
 * where, what was expected). Anything else that escapes is a bug; the CLI
 * reports it as EINTERNAL without a stack trace.
 */

export type ErrorCode =
  | 'EUSAGE' //      bad command-line usage of cfsroot itself
  | 'ECMDLINE' //    invalid kernel command line argument
  | 'ECONFIG' //     invalid prepare-root.conf / repo config value
  | 'EKEYS' //       key file missing, empty or malformed
  | 'EDEPLOY' //     deployment cannot be resolved (ostree= link, escapes, names)
  | 'EOBJECT' //     OSTree object missing, wrong type, too large, hash mismatch
  | 'EGVARIANT' //   serialised GVariant malformed or not in normal form
  | 'ESIGNATURE' //  no valid signature from a trusted key
  | 'EDIGEST' //     composefs digest missing, malformed or mismatching
  | 'EIMAGE' //      composefs image missing or malformed
  | 'ELIMIT' //      a size/depth limit was exceeded
  | 'EMOUNT' //      a mount step failed
  | 'EIO' //         reading or writing a file failed
  | 'ETIMEOUT' //    the boot passed its deadline (printed by the addon's watchdog thread)
  | 'EINTERNAL'; //  a bug in cfsroot

export class CfsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'CfsError';
    this.code = code;
  }
}

export function isCfsError(e: unknown): e is CfsError {
  return e instanceof CfsError;
}

/** Throw a CfsError. Handy in expression position: `x ?? fail(...)`. */
export function fail(code: ErrorCode, message: string): never {
  throw new CfsError(code, message);
}

/**
 * Prefix the message of a CfsError with what was being done, keeping its
 * code ("checking commit signature: ..."); wrap other errors as EIO with the
 * system message (no stack).
 */
export function context<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw withContext(what, e);
  }
}

export function withContext(what: string, e: unknown): CfsError {
  if (e instanceof CfsError) return new CfsError(e.code, `${what}: ${e.message}`);
  return new CfsError('EIO', `${what}: ${describeSystemError(e)}`);
}

/** "ENOENT: no such file or directory" style text for a Node system error. */
export function describeSystemError(e: unknown): string {
  if (e && typeof e === 'object') {
    const err = e as { code?: unknown; message?: unknown; syscall?: unknown; path?: unknown };
    if (typeof err.code === 'string' && typeof err.message === 'string') {
      // Node's message already reads "ENOENT: no such file or directory, open '/x'".
      return err.message;
    }
    if (typeof err.message === 'string') return err.message;
  }
  return String(e);
}
