/**
 * Entry point when cfsroot runs from source or as a plain bundle
 * (`node dist/cfsroot.cjs`, tsx). The single executable starts in
 * src/startup/sea.ts instead, which adds the startup snapshot.
 */
import { start } from './startup/entry.js';

start();
