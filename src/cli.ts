/**
 * Command-line interface. Other programs call cfsroot exactly this way:
 *
 *   cfsroot SYSROOT [KERNEL_CMDLINE]     the boot (ostree-prepare-root compatible; in an initramfs only)
 *   cfsroot --target DIR [SYSROOT] [KERNEL_CMDLINE]
 *                                        the new root assembled at DIR, SYSROOT left in place
 *   cfsroot verify [options]             every check the boot makes; no mounts, no writes
 *   cfsroot plan [options]               the mount steps the boot would run; no side effects
 *   cfsroot digest [--hash ALG] FILE...  fs-verity digests, as `fsverity digest` prints them
 *
 * Exit codes: 0 success; 1 refused or failed (one line on stderr says what,
 * where and why); 2 usage error.
 */

import * as fs from 'node:fs';
import { CfsError, describeSystemError, fail } from './errors.js';
import { VERSION } from './version.js';
import { oneLine, writeToFd, type Logger } from './log.js';
import type { Io } from './io.js';
import type { BootDeps } from './boot.js';
import type { BootDecision } from './ostree/model.js';
import type { VerityAlg } from './image/fsverity.js';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

const HELP = `cfsroot ${VERSION}: turn a mounted physical root into a verified composefs root

Usage:
  cfsroot SYSROOT [KERNEL_CMDLINE]
      The boot: decide, verify, and mount the new root over SYSROOT (as ostree-prepare-root
      for ostree=, as composefs-setup-root for composefs= / composefs.digest=). Runs only in
      an initramfs (/etc/initrd-release). KERNEL_CMDLINE defaults to /proc/cmdline.
  cfsroot --target DIR [SYSROOT] [KERNEL_CMDLINE]
      The same checks and mounts, with the new root assembled at DIR (e.g. /run/nextroot for
      systemctl soft-reboot) and SYSROOT (default /sysroot) left mounted where it is; the
      running boot's /run state (ostree-booted, volatile-root) is not rewritten.
  cfsroot verify [--sysroot DIR] [--cmdline STR] [--initramfs-root DIR] [--json]
      Run every check the boot makes (config, kargs, deployment, signature, image header
      and digest) without mounting or writing anything. Exit 0 only if the boot would go ahead.
      With composefs= or composefs.digest= kargs: the composefs-native checks (repository,
      image named by its digest, state dirs, usr/lib/composefs/setup-root-conf.toml).
  cfsroot plan [--sysroot DIR] [--cmdline STR] [--initramfs-root DIR] [--target DIR] [--json]
      Print the ordered mount steps the boot (with --target: cfsroot --target DIR) would
      perform. No side effects.
  cfsroot preflight [--sysroot DIR] [--boot DIR] [--entry FILE] [--json]
      Will the next boot work? Check the boot entry the loader picks (or FILE), its
      initramfs (cfsroot, its unit, config, key, kernel modules) and the deployment it
      boots, with the boot's own decision code. Exit 0 only when every check passes.
  cfsroot digest [--hash sha256|sha512] FILE...
      Print the fs-verity digest of each FILE as "sha256:<hex> FILE" (like fsverity digest).

Options:
  --sysroot DIR          physical root (default /sysroot)
  --cmdline STR          kernel command line (default: contents of /proc/cmdline)
  --initramfs-root DIR   where prepare-root.conf, the key file and setup-root-conf.toml are read (default /)
  --json                 machine-readable output
  -h, --help             this text
  -V, --version          print the version

Exit status: 0 success, 1 refused or failed (reason on stderr), 2 usage error.
`;

/** The command line's writers: stdout and stderr (exported for the snapshot's warm-up). */
export const defaultIo: Io = {
  out: (s) => writeToFd(1, s),
  err: (s) => writeToFd(2, s),
};

interface CommonOptions {
  sysroot: string;
  cmdline: string | null;
  initramfsRoot: string;
  json: boolean;
}

interface PlanOptions extends CommonOptions {
  target: string | null;
}

/** Parse `--name VALUE` / `--name=VALUE` options; positional args are refused unless allowed. */
function parseCommon(args: string[], command: string): CommonOptions {
  const o: CommonOptions = { sysroot: '/sysroot', cmdline: null, initramfsRoot: '/', json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined) fail('EUSAGE', `${command}: option ${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--sysroot': o.sysroot = value(); break;
      case '--cmdline': o.cmdline = value(); break;
      case '--initramfs-root': o.initramfsRoot = value(); break;
      case '--json': o.json = true; break;
      default:
        fail('EUSAGE', `${command}: unknown argument "${arg}" (see cfsroot --help)`);
    }
  }
  return o;
}

function readProcCmdline(): string {
  try {
    return fs.readFileSync('/proc/cmdline', 'utf8');
  } catch (e) {
    fail('EIO', `reading /proc/cmdline: ${describeSystemError(e)}; pass the command line explicitly`);
  }
}

/**
 * What the boot form takes from the machine, replaceable only for the
 * snapshot's warm-up (src/startup/warmup.ts), which runs the boot form
 * through this very dispatch with mounts that do nothing.
 */
export interface RunDeps {
  boot?: BootDeps;
  logger?: Logger;
  /** Default /: where prepare-root.conf and the key are read. */
  initramfsRoot?: string;
  /** Default INITRD_RELEASE. */
  initrdRelease?: string;
}

export async function run(argv: string[], io: Io = defaultIo, deps: RunDeps = {}): Promise<number> {
  try {
    return await dispatch(argv, io, deps);
  } catch (e) {
    return reportError(e, io, argv.includes('--json') && (argv[0] === 'verify' || argv[0] === 'plan'));
  }
}

function reportError(e: unknown, io: Io, json: boolean): number {
  const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', `internal error: ${describeSystemError(e)}`);
  // One line, whatever names from the disk the message quotes (see oneLine).
  const message = oneLine(err.message);
  if (json) io.out(JSON.stringify({ ok: false, error: { code: err.code, message } }) + '\n');
  io.err(`cfsroot: ${message}\n`);
  return err.code === 'EUSAGE' ? EXIT_USAGE : EXIT_REFUSED;
}

async function dispatch(argv: string[], io: Io, deps: RunDeps): Promise<number> {
  const [first, ...rest] = argv;
  switch (first) {
    case undefined:
      io.err(HELP);
      return EXIT_USAGE;
    case '-h':
    case '--help':
    case 'help':
      io.out(HELP);
      return EXIT_OK;
    case '-V':
    case '--version':
      io.out(`cfsroot ${VERSION}\n`);
      return EXIT_OK;
    case 'digest':
      return commandDigest(rest, io);
    case 'verify':
      return commandVerify(parseCommon(rest, 'verify'), io);
    case 'plan': {
      // plan also takes the boot form's --target (what `cfsroot --target DIR` would run).
      const i = rest.findIndex((a) => a === '--target' || a.startsWith('--target='));
      let target: string | null = null;
      if (i >= 0) {
        const v = rest[i] === '--target' ? rest[i + 1] : rest[i]!.slice('--target='.length);
        if (v === undefined || !v.startsWith('/')) fail('EUSAGE', `plan: --target needs an absolute directory, got ${v === undefined ? 'nothing' : `"${v}"`}`);
        rest.splice(i, rest[i] === '--target' ? 2 : 1);
        target = v;
      }
      return commandPlan({ ...parseCommon(rest, 'plan'), target }, io);
    }
    case 'preflight':
      return (await import('./preflight/command.js')).commandPreflight(rest, io);
    default:
      return commandBoot(parseBootForm(argv, deps.initrdRelease), io, deps);
  }
}

/** Where the boot form is allowed without --target: the file systemd's initrd units are conditioned on. */
export const INITRD_RELEASE = '/etc/initrd-release';

export interface BootForm {
  sysroot: string;
  cmdline: string | null;
  target: string | null;
}

/**
 * `[--target DIR] SYSROOT [KERNEL_CMDLINE]`, or `--target DIR` alone
 * (SYSROOT /sysroot). The boot form mounts over its argument: a mistyped
 * command (`verfy`) must not become a boot of a directory of that name, nor
 * may a run outside an initramfs replace the running system's /sysroot.
 */
export function parseBootForm(argv: readonly string[], initrdRelease = INITRD_RELEASE): BootForm {
  let target: string | null = null;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--target' || a.startsWith('--target=')) {
      const v = a === '--target' ? argv[++i] : a.slice('--target='.length);
      if (v === undefined || !v.startsWith('/')) fail('EUSAGE', `--target needs an absolute directory such as /run/nextroot, got ${v === undefined ? 'nothing' : `"${v}"`}`);
      target = v.replace(/(.)\/+$/, '$1');
    } else if (a.startsWith('-') && positional.length === 0) {
      fail('EUSAGE', `unknown option "${a}" (see cfsroot --help)`);
    } else {
      positional.push(a);
    }
  }
  const [first, cmdline, ...extra] = positional;
  if (first === undefined && target === null) fail('EUSAGE', 'expected SYSROOT (see cfsroot --help)');
  if (first !== undefined && !first.startsWith('/')) {
    fail('EUSAGE', `unknown command "${first}": expected verify, plan, preflight, digest, or the boot form with an absolute SYSROOT such as /sysroot (see cfsroot --help)`);
  }
  if (extra.length > 0) fail('EUSAGE', `too many arguments: expected [--target DIR] SYSROOT [KERNEL_CMDLINE], got ${argv.length}`);
  const sysroot = first ?? '/sysroot';
  if (target === null && !fs.existsSync(initrdRelease)) {
    fail(
      'EUSAGE',
      `cfsroot ${sysroot}: the boot form replaces ${sysroot} and runs only in an initramfs (${initrdRelease} is missing here): ` +
        'use cfsroot verify or plan to check this system, or --target DIR to assemble a root at DIR (e.g. /run/nextroot)',
    );
  }
  const within = (a: string, b: string) => a === b || a.startsWith(b === '/' ? '/' : `${b}/`);
  if (target !== null && (within(target, sysroot) || within(sysroot, target))) {
    fail('EUSAGE', `--target ${target} and SYSROOT ${sysroot} overlap: expected a directory outside the physical root, such as /run/nextroot`);
  }
  return { sysroot, cmdline: cmdline ?? null, target };
}

async function commandDigest(args: string[], io: Io): Promise<number> {
  let alg: VerityAlg = 'sha256';
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--hash' || a.startsWith('--hash=')) {
      const v = a === '--hash' ? args[++i] : a.slice('--hash='.length);
      if (v !== 'sha256' && v !== 'sha512') fail('EUSAGE', `digest: --hash must be sha256 or sha512, got "${v ?? ''}"`);
      alg = v;
    } else if (a === '--') {
      files.push(...args.slice(i + 1));
      break;
    } else if (a.startsWith('-') && a !== '-') {
      fail('EUSAGE', `digest: unknown option "${a}"`);
    } else {
      files.push(a);
    }
  }
  if (files.length === 0) fail('EUSAGE', 'digest: no FILE given');
  const { formatDigest } = await import('./image/fsverity.js');
  const { fileDigester } = await import('./sys/native.js');
  const digester = fileDigester();
  for (const f of files) {
    const d = await digester.digest(f, alg);
    io.out(`${formatDigest(alg, d)} ${f}\n`);
  }
  return EXIT_OK;
}

async function decideFor(o: CommonOptions, measure: boolean): Promise<BootDecision> {
  const { decideBoot } = await import('./ostree/decide.js');
  // verify measures the image: through the addon when it loads.
  const digester = measure ? (await import('./sys/native.js')).fileDigester() : null;
  return decideBoot({
    sysroot: o.sysroot,
    cmdline: o.cmdline ?? readProcCmdline(),
    initramfsRoot: o.initramfsRoot,
    measure,
    ...(digester ? { digestImage: (image: string, alg: 'sha256') => digester.digest(image, alg) } : {}),
  });
}

async function commandVerify(o: CommonOptions, io: Io): Promise<number> {
  const cmdline = o.cmdline ?? readProcCmdline();
  const { splitKernelCmdline } = await import('./cmdline.js');
  const { selectsNativeMode } = await import('./composefs-native/kargs.js');
  if (selectsNativeMode(splitKernelCmdline(cmdline))) return verifyNative({ ...o, cmdline }, io);
  const d = await decideFor({ ...o, cmdline }, true);
  if (o.json) {
    io.out(toJson({ ok: true, decision: d }) + '\n');
  } else {
    io.out(describeDecision(d));
  }
  for (const w of d.warnings) io.err(`cfsroot: warning: ${oneLine(w)}\n`);
  return EXIT_OK;
}

/** verify for the composefs-native kargs (composefs=, composefs.digest=): src/composefs-native/. */
async function verifyNative(o: CommonOptions & { cmdline: string }, io: Io): Promise<number> {
  const { decideNative } = await import('./composefs-native/decide.js');
  const { describeNativeDecision } = await import('./composefs-native/describe.js');
  const { fileDigester, loadNativeAddonQuietly } = await import('./sys/native.js');
  const digester = fileDigester();
  // The kernel's fs-verity of the image, as the boot asks it (secure form: required). Without the
  // addon (CFSROOT_SYS=spawn) it cannot be asked, and the output says so.
  const addon = loadNativeAddonQuietly();
  const { kernelVerity } = await import('./boot-plan.js');
  const d = await decideNative({
    sysroot: o.sysroot,
    cmdline: o.cmdline,
    initramfsRoot: o.initramfsRoot,
    measure: true,
    digestImage: (file, alg) => digester.digest(file, alg),
    ...(addon?.measureVerity ? { measureVerity: kernelVerity(addon.measureVerity.bind(addon)) } : {}),
  });
  io.out(o.json ? toJson({ ok: true, decision: d }) + '\n' : describeNativeDecision(d));
  for (const w of d.warnings) io.err(`cfsroot: warning: ${oneLine(w)}\n`);
  return EXIT_OK;
}

async function commandPlan(o: PlanOptions, io: Io): Promise<number> {
  const cmdline = o.cmdline ?? readProcCmdline();
  const { formatPlan } = await import('./plan/steps.js');
  const { isNativeBoot, planBoot } = await import('./boot-plan.js');
  // The plan the boot would make (src/boot-plan.ts): the same decision, and
  // the image path from the same probe through the backend the boot would use.
  const { bootSys, loadNativeAddonQuietly } = await import('./sys/native.js');
  const addon = isNativeBoot(cmdline) ? loadNativeAddonQuietly() : null;
  const sys = bootSys(addon ? { addon } : {});
  const { steps, decision } = await planBoot(
    { sysroot: o.sysroot, cmdline, initramfsRoot: o.initramfsRoot, ...(o.target !== null ? { target: o.target } : {}) },
    sys,
    addon,
  );
  if (o.json) io.out(toJson({ ok: true, steps }) + '\n');
  else io.out(formatPlan(steps));
  for (const w of decision.warnings) io.err(`cfsroot: warning: ${oneLine(w)}\n`);
  return EXIT_OK;
}

async function commandBoot(f: BootForm, io: Io, deps: RunDeps): Promise<number> {
  const { boot } = await import('./boot.js');
  const opts = { sysroot: f.sysroot, cmdline: f.cmdline ?? readProcCmdline(), initramfsRoot: deps.initramfsRoot ?? '/', ...(f.target !== null ? { target: f.target } : {}) };
  return boot(opts, io, deps.logger, deps.boot);
}

/** JSON with bigints as strings and byte arrays as hex. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (typeof val === 'bigint') return val.toString();
    if (val instanceof Uint8Array) return Buffer.from(val).toString('hex');
    return val;
  });
}

/** The human summary `verify` prints: one fact per line, then the verdict. */
export function describeDecision(d: BootDecision): string {
  const c = d.config;
  const lines: string[] = [];
  const mode = c.composefsSigned
    ? c.composefsDigest ? 'signed+digest' : 'signed'
    : c.composefsDigest ? 'digest' : c.composefsVerity ? 'verity' : c.composefs;
  lines.push(`config:      composefs=${mode} (${c.sources['composefs'] ?? 'default'})`);
  lines.push(
    `             sysroot.readonly=${c.sysrootReadonly} root.transient=${c.rootTransient} ` +
      `root.transient-ro=${c.rootTransientRo} etc.transient=${c.etcTransient}`,
  );
  lines.push(`deployment:  ${d.deployment.dir}`);
  lines.push(`             stateroot ${d.deployment.stateroot}, commit ${d.deployment.commit}, serial ${d.deployment.serial}`);
  const cfs = d.composefs;
  if (!cfs) {
    lines.push('composefs:   no (the deployment is bind-mounted as the root; nothing is verified)');
  } else {
    if (cfs.signed) {
      lines.push(
        `signature:   commit ${cfs.signed.commit}${cfs.signed.viaParent ? ' (parent, bootc fallback)' : ''} ` +
          `signed by key ${cfs.signed.keyIndex + 1} of ${cfs.signed.keyPath}`,
      );
    }
    lines.push(`image:       ${cfs.image} (composefs header v${cfs.header.version}, ${cfs.header.hasAcl ? 'with' : 'no'} ACLs)`);
    if (cfs.measuredDigest) {
      lines.push(
        `digest:      sha256:${cfs.measuredDigest}` +
          (cfs.expectedDigest ? ` matches the ${cfs.expectedDigestSource}` : ' (not pinned by a signature or karg)'),
      );
    }
    lines.push(`verity:      ${cfs.verity ? 'required on every backing object (verity=require)' : 'not required'}`);
  }
  let verdict: string;
  if (!cfs) verdict = 'OK: the boot would go ahead with an unverified (legacy) root';
  else if (cfs.signed) verdict = 'OK: the boot would mount a signed, fs-verity-checked composefs root';
  else if (cfs.expectedDigest) verdict = 'OK: the boot would mount a composefs root pinned by its digest';
  else if (cfs.verity) verdict = 'OK: the boot would mount a composefs root with verity required on backing objects';
  else verdict = 'OK: the boot would mount a composefs root (image not pinned)';
  lines.push(verdict);
  return lines.join('\n') + '\n';
}
