/**
 * (g) of `make bench`: boots of a deployment the real ostree made
 * (test/helpers/real-ostree.ts: Debian's ostree 2022.7 layout, a composefs
 * image of 28 KiB, a signed commit), the kind issue 15 measured the C
 * tool on, with the C tool beside cfsroot on the same deployment.
 *
 * The C tool is Debian 12's `ostree-prepare-root` (ostree 2022.7, package
 * ostree-boot), unpacked into build/bench/ostree-boot with `apt-get
 * download` + `dpkg-deb -x`, never installed: the package would add a
 * dracut module and a dracut.conf.d file to this machine, which the QEMU
 * initrd builds must not see. It has no composefs support, so what it does
 * here (bind the deployment, /etc, /var, /sysroot read-only) is compared
 * with cfsroot's `enabled = no` boot, which does the same work; cfsroot's
 * `yes` and signed boots of the same deployment are beside them. It reads
 * the kernel command line only from /proc/cmdline, so the harness binds the
 * BLS entry's `options` line there. Own work: each tool's boot minus its
 * own usage run (cfsroot `--version`; the C tool's `--help`, which exits 1
 * after its usage error), interleaved round by round.
 *
 * With an image this small the signed boot's private copy and digest cost
 * microseconds, so its own work is close to what the signed boot costs on
 * the fs-verity path, which this host's kernel cannot take (no fs-verity):
 * the key, the commit, the signature, the mounts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeRealOstreeSysroot } from '../test/helpers/real-ostree.js';
import { BENCH_COPIES, BENCH_DIR, REPO, buildBenchRoot, copySpread, interleave, interleaveOver, runInNamespace, type Sample } from './harness.js';

/** Debian's ostree-prepare-root, unpacked once; null (with the reason printed) when it cannot be had. */
function cTool(): string | null {
  const dir = path.join(BENCH_DIR, 'ostree-boot');
  const bin = path.join(dir, 'usr/lib/ostree/ostree-prepare-root');
  if (fs.existsSync(bin)) return bin;
  try {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('apt-get', ['download', 'ostree-boot'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const deb = fs.readdirSync(dir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download left no .deb');
    execFileSync('dpkg-deb', ['-x', path.join(dir, deb), dir]);
    if (!fs.existsSync(bin)) throw new Error(`${deb} has no usr/lib/ostree/ostree-prepare-root`);
    return bin;
  } catch (e) {
    console.log(`  (the C tool is left out: ${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
    return null;
  }
}

export function realOstreeFigures(
  rounds: number,
  table: (title: string, samples: Record<string, Sample[]>, base: string) => Record<string, unknown>,
): Record<string, unknown> {
  const real = makeRealOstreeSysroot();
  const c = cTool();
  const cmdlineFile = path.join(BENCH_DIR, 'real-ostree-cmdline');
  fs.writeFileSync(cmdlineFile, `${real.bootOptions}\n`);
  // BENCH_COPIES copies of cfsroot (harness.ts says why), one of the C tool, whose figures are steady.
  const bins: Record<string, string> = c ? { 'ostree-prepare-root': c } : {};
  for (let k = 0; k < BENCH_COPIES; k++) bins[`cfsroot${k}`] = path.join(REPO, 'dist/cfsroot');
  // One root, each configuration bound over its prepare-root.conf per run: every
  // boot and the --version it is taken against run the same copy of the binary.
  const root = buildBenchRoot(bins, real.publicKeyBase64, { enabled: 'no', name: 'real' });
  try {
    const imageBytes = fs.statSync(real.image).size;
    const copyOf = (k: number): Record<string, () => Sample> => {
      const bin = `/usr/bin/cfsroot${k}`;
      const cfs = (enabled: 'signed' | 'yes' | 'no') => () =>
        runInNamespace(root, real.sysroot, { argv: [bin, '/sysroot', real.bootOptions], env: { CFSROOT_SYS: 'native' }, enabled });
      return {
        'cfsroot --version': () => runInNamespace(root, real.sysroot, { argv: [bin, '--version'] }),
        'cfsroot boot, signed (copy path)': cfs('signed'),
        'cfsroot boot, enabled = yes': cfs('yes'),
        'cfsroot boot, enabled = no': cfs('no'),
      };
    };
    const title = `(g) the deployment the real ostree made (image ${imageBytes} bytes, signed commit); ${rounds} interleaved rounds`;
    const { all, each } = interleaveOver(rounds, Array.from({ length: BENCH_COPIES }, (_, k) => copyOf(k)));
    const out: Record<string, unknown> = { imageBytes, cfsroot: table(`${title} over ${BENCH_COPIES} copies: cfsroot`, all, 'cfsroot --version') };
    out['cfsrootByCopy'] = copySpread(each, ['cfsroot boot, enabled = yes', 'cfsroot boot, signed (copy path)', 'cfsroot boot, enabled = no'], 'cfsroot --version');
    // The C tool's runs are interleaved apart. Run between cfsroot's, they
    // went with cfsroot figures 2-4 ms higher: `yes` own work 5.3 ms in a
    // 41-round run with them, 2.2 ms in a 31-round run without (18:56 UTC).
    if (c) {
      const cVariants: Record<string, () => Sample> = {
        'C ostree-prepare-root --help (exit 1)': () =>
          runInNamespace(root, real.sysroot, { argv: ['/usr/bin/ostree-prepare-root', '--help'], status: 1, procCmdline: cmdlineFile }),
        'C ostree-prepare-root /sysroot (2022.7)': () =>
          runInNamespace(root, real.sysroot, { argv: ['/usr/bin/ostree-prepare-root', '/sysroot'], procCmdline: cmdlineFile }),
      };
      out['cTool'] = table(`${title}: the C tool`, interleave(rounds, cVariants), 'C ostree-prepare-root --help (exit 1)');
    }
    return out;
  } finally {
    root.remove();
    real.remove();
  }
}
