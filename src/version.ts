/** The version, injected by the build (esbuild --define); "-dev" when run from source. */
declare const __CFSROOT_VERSION__: string | undefined;
export const VERSION: string = typeof __CFSROOT_VERSION__ === 'string' ? __CFSROOT_VERSION__ : '0.0.0-dev';
