/**
 * The boot warms OpenSSL on a thread of the addon as soon as the decision
 * knows the commit's signature will be checked (src/ostree/decide.ts
 * onSignedBoot; native/verity.c warmCrypto): told once for a signed
 * configuration, never for one that checks no signature.
 */
import test from 'ava';
import { decideBoot } from '../src/ostree/decide.js';
import { makeFixture, SIGNED_CONF } from './helpers/fixture.js';

async function timesTold(conf: string, kargs?: string): Promise<number> {
  const fx = makeFixture({ conf, ...(kargs ? { kargs } : {}) });
  try {
    let told = 0;
    await decideBoot({ sysroot: fx.sysroot, cmdline: fx.cmdline, initramfsRoot: fx.initramfs, measure: false, onSignedBoot: () => told++ });
    return told;
  } finally {
    fx.cleanup();
  }
}

test('a signed configuration tells onSignedBoot once', async (t) => {
  t.is(await timesTold(SIGNED_CONF), 1);
});

test('unsigned configurations never tell it', async (t) => {
  t.is(await timesTold('[composefs]\nenabled = yes\n'), 0);
  t.is(await timesTold('[composefs]\nenabled = no\n'), 0);
  t.is(await timesTold('[composefs]\nenabled = yes\n', 'ot-composefs=off'), 0);
});
