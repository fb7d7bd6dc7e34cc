/**
 * The version, injected by the build (esbuild --define); "-dev" when run from
 * source. It is kept as the what-string "@(#)cfsroot VERSION", one literal in
 * the bundle, so that `cfsroot preflight` can read the version of a binary
 * it cannot run (one inside an initramfs archive) from its bytes.
 */
declare const __CFSROOT_VERSION__: string | undefined;
export const VERSION_STAMP: string = typeof __CFSROOT_VERSION__ === 'string' ? '@(#)cfsroot ' + __CFSROOT_VERSION__ : '@(#)cfsroot 0.0.0-dev';
export const VERSION: string = VERSION_STAMP.slice('@(#)cfsroot '.length);
