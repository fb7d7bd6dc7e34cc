/**
 * Logging for the boot path (SPEC §4 "Failure": messages go to stderr
 * prefixed with the tool name). In the initramfs stderr may go nowhere a
 * person looks, so every line is also written to /dev/kmsg (the kernel log,
 * which the journal and the console both pick up) with a syslog priority
 * prefix `<N>`. kmsg is best effort: a missing or read-only /dev/kmsg, or a
 * write the kernel rejects (rate limit), is ignored; logging never throws.
 */

import * as fs from 'node:fs';
import { isControlCode } from './text.js';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

// syslog priorities as /dev/kmsg reads them (linux/Documentation/ABI/testing/dev-kmsg).
const PRIORITY = { error: 3, warn: 4, info: 6 } as const;
type Level = keyof typeof PRIORITY;

export interface LogSinkOptions {
  /** Where person-readable lines go (default file descriptor 2, see writeToFd). */
  stderr?: (line: string) => void;
  /** Path of the kernel log device; null disables it (default /dev/kmsg). */
  kmsgPath?: string | null;
  /** Prefix of every line (default "cfsroot"). */
  tag?: string;
}

/** A logger writing to stderr and, when writable, the kernel log. */
export function createLogger(opts: LogSinkOptions = {}): Logger {
  const tag = opts.tag ?? 'cfsroot';
  const toStderr = opts.stderr ?? ((line: string) => writeToFd(2, line));
  // Under systemd with stderr connected to the journal (JOURNAL_STREAM is
  // set), the journal already forwards our lines to the console and kmsg;
  // writing kmsg ourselves would print every message twice.
  let kmsgPath = opts.kmsgPath === undefined ? (process.env['JOURNAL_STREAM'] ? null : '/dev/kmsg') : opts.kmsgPath;
  let kmsgFd: number | null = null;

  const toKmsg = (level: Level, msg: string): void => {
    if (kmsgPath === null) return;
    try {
      // Opened on first use (not at import) so `plan`/`verify` runs that log
      // nothing never touch the device.
      kmsgFd ??= fs.openSync(kmsgPath, 'w');
      // One write per record: kmsg treats each write(2) as one log line.
      fs.writeSync(kmsgFd, `<${PRIORITY[level]}>${tag}: ${msg}\n`);
    } catch {
      // Not writable (no /dev/kmsg in a container, EPERM, EAGAIN from the
      // rate limiter): give up on kmsg for the rest of the run.
      if (kmsgFd !== null) {
        try {
          fs.closeSync(kmsgFd);
        } catch {
          /* already closed */
        }
      }
      kmsgFd = null;
      kmsgPath = null;
    }
  };

  const emit = (level: Level, msg: string): void => {
    // One record per message. Messages quote names from the disk; a newline
    // in one must not start a line that reads as cfsroot's own (log injection).
    const line = oneLine(msg);
    try {
      toStderr(`${tag}: ${line}\n`);
    } catch {
      /* stderr closed: nothing better to do */
    }
    toKmsg(level, line);
  };

  return {
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/**
 * Straight to the file descriptor: a line is written before the call
 * returns, and the first line costs no stream set-up (making
 * process.stderr loads and runs a stream stack, ~0.5 ms at boot, issue 5).
 * A descriptor that would block (a full non-blocking pipe) hands the rest
 * to the stream, which waits for it.
 */
export function writeToFd(fd: 1 | 2, text: string): void {
  const stream = () => (fd === 1 ? process.stdout : process.stderr);
  // Once a write went to the stream, the rest follows it there, in order.
  if (handedToStream[fd]) return void stream().write(text);
  const bytes = Buffer.from(text);
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'EAGAIN') throw e;
      handedToStream[fd] = true;
      stream().write(bytes.subarray(done));
      return;
    }
  }
}
const handedToStream: Record<1 | 2, boolean> = { 1: false, 2: false };

/** True once every line went straight to its descriptor (none waits in a stream). */
export function allOutputWritten(): boolean {
  return !handedToStream[1] && !handedToStream[2];
}

/**
 * A message as one printable line: control characters (newline, CR, ESC,
 * ...) become `\n`, `\r` or `\xHH`. Messages quote paths and values read
 * from the disk, which may contain any byte but `/` and NUL.
 */
export function oneLine(msg: string): string {
  // A scan, not a regular expression: a snapshot keeps no compiled
  // expression, and compiling one would cost every boot's closing line.
  let out = '';
  let from = 0;
  for (let i = 0; i < msg.length; i++) {
    const c = msg.charCodeAt(i);
    if (!isControlCode(c)) continue;
    out += msg.slice(from, i) + (c === 10 ? '\\n' : c === 13 ? '\\r' : c === 9 ? '\\t' : `\\x${c.toString(16).padStart(2, '0')}`);
    from = i + 1;
  }
  return from === 0 ? msg : out + msg.slice(from);
}

/** A logger that drops everything (tests, `plan`). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** The process-wide logger the CLI uses. */
export const log: Logger = createLogger();
