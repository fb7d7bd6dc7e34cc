/**
 * Entry point of the single executable (the Makefile bundles this file).
 *
 * The executable starts from a V8 startup snapshot (sea-config
 * `useSnapshot`): the build runs this file once, runs the boot's code once on
 * a throw-away deployment (./warmup.ts) so that it is compiled and Node's
 * internals it needs are loaded, and saves the heap; each run then starts in
 * `start` from that heap. Portability (issue 12): Node 24 accepts a snapshot
 * when the Node version, architecture and platform match, all fixed by the
 * executable itself; the V8 flag and CPU-feature tag that made Node 20 refuse
 * a snapshot built on another CPU is not part of the check. `make check`
 * proves it by running the executable under several emulated CPU models
 * (test/portability.test.ts).
 */

import * as v8 from 'node:v8';
import { start } from './entry.js';
import { warmUp } from './warmup.js';

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  // The snapshot is taken once the event loop is empty, i.e. after this settles.
  warmUp().catch((e: unknown) => {
    // A broken warm-up is a bug in the boot path: fail the build, loudly.
    process.stderr.write(`cfsroot: snapshot warm-up failed: ${e instanceof Error ? e.stack : String(e)}\n`);
    throw e;
  });
  v8.startupSnapshot.setDeserializeMainFunction(start);
} else {
  start();
}
