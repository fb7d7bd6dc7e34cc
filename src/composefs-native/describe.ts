/** The human summary `verify` prints for a composefs-native decision: one fact per line, then the verdict. */

import type { NativeDecision, NativeSubdir } from './model.js';

function subdirLine(name: string, s: NativeSubdir): string {
  const from = s.source === 'default' ? 'default' : s.source;
  if (s.skippedFor) return `${name} left alone (${s.skippedFor}; configured ${s.configured}, ${from})`;
  const where = s.state ? ` from ${s.state.dir}` : '';
  return `${name} ${s.mount}${where} (${from})`;
}

export function describeNativeDecision(d: NativeDecision): string {
  const lines: string[] = [];
  lines.push(`mode:        composefs-native (${d.karg.karg.slice(0, d.karg.karg.indexOf('=') + 1)}${d.insecure ? ', insecure' : ''})`);
  lines.push(`config:      ${d.config ?? 'no setup-root-conf.toml (defaults)'}`);
  lines.push(
    `repository:  ${d.repository.dir} (${d.repository.algorithm ? `meta.json: ${d.repository.algorithm}, version ${d.repository.metaVersion}` : 'no meta.json'})`,
  );
  for (const t of d.tried) lines.push(`not found:   ${t}`);
  lines.push(
    `image:       ${d.image.path}${d.image.link ? ` -> ${d.image.link}` : ''} (composefs header v${d.image.header.version}, ` +
      `${d.image.header.hasAcl ? 'with' : 'no'} ACLs, ${d.image.size} bytes)`,
  );
  if (d.image.measuredDigest) lines.push(`digest:      ${d.image.alg}:${d.image.measuredDigest} matches its name and ${d.karg.karg.split('=')[0]}=`);
  lines.push(
    `verity:      ${d.verity.require ? 'required on every backing object (verity=require) and on the image' : 'not required (insecure ?: missing fs-verity tolerated)'}` +
      (d.verity.kernel === 'not-checked' ? '; the kernel\'s fs-verity on the image is checked at boot, not by verify' : `; kernel: ${d.verity.kernel}`),
  );
  lines.push(`root:        overlay ${d.overlay.source} (${d.overlay.options.join(',')})${d.rootTransient.value ? ', transient (tmpfs upper)' : ''}`);
  lines.push(`state:       ${d.stateDir}: ${subdirLine('/etc', d.etc)}; ${subdirLine('/var', d.var)}`);
  lines.push(
    `OK: a composefs-native boot would mount image ${d.image.digest.slice(0, 16)}… pinned by its digest, ` +
      `${d.insecure ? 'fs-verity not required (insecure)' : 'with fs-verity required'}`,
  );
  return lines.join('\n') + '\n';
}
