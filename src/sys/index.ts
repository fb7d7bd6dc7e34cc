/**
 * The kernel-facing layer (SPEC §4): the `Sys` interface, its mount(8)
 * backend, and the plan executor with rollback. Nothing else in cfsroot
 * changes mounts.
 */
export type { Sys, MountCall, Propagation, Beneath, BindConfinement, MountHandle, ImageFile, ImageCopy } from './types.js';
export { spawnSys, type SpawnSysOptions } from './spawn.js';
export { executePlan, type ExecResult, type StepRecord } from '../plan/execute.js';
export { parseMountinfo, readMountinfo, type MountInfo } from './mountinfo.js';
