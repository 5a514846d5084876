#!/usr/bin/env node
/*
 * Seed-box interop: otpca's seed boxes (PROTOCOL.md section 5.1, through
 * seedbox_tool) against an independent implementation written here on
 * node's built-in crypto module only (createECDH('prime256v1'),
 * createHmac, hkdfSync, createCipheriv('aes-128-gcm')); no npm package.
 *
 *   node seedbox_interop.js [PATH/TO/seedbox_tool]     (or SEEDBOX_TOOL=...)
 *
 *   (a) the known-answer vector tests/golden/seedbox_kat.txt (which
 *       tests/test_seedbox.c holds otpca to) is recomputed from its two
 *       private scalars: R, E, Z, PRK, every okm and sealed seed;
 *   (b) otpca seals the vector's entries to the same bytes;
 *   (c) for fresh random keys, serials and seeds (1..64-byte serials,
 *       16..64-byte seeds, 33- and 65-byte recipient keys): otpca and node
 *       seal the same bytes from the same ephemeral scalar; node seals,
 *       otpca opens; otpca seals with its own fresh ephemeral key, node
 *       opens;
 *   (d) a flipped byte, a wrong serial, a wrong key or a seedkey off the
 *       curve is refused by the other side, both ways.
 * The last line is "N passed, N failed"; the exit status is 1 on any
 * failure.
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const KAT = path.join(__dirname, '..', 'golden', 'seedbox_kat.txt');
const INFO_PREFIX = Buffer.from('otpca-seed-v1 ', 'ascii');
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-';

let passed = 0;
let failed = 0;

function fatal (msg) {
  console.error('seedbox_interop: ' + msg);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}

function check (name, cond, detail) {
  if (cond) {
    passed++;
    console.log('ok   ' + name);
  } else {
    failed++;
    console.log('FAIL ' + name + (detail ? ': ' + detail : ''));
  }
}

const TOOL = process.argv[2] || process.env.SEEDBOX_TOOL;
if (!TOOL || !fs.existsSync(TOOL)) {
  fatal('seedbox_tool not found (pass its path as the first argument or in SEEDBOX_TOOL)');
}

/* Runs seedbox_tool: {status, lines, stderr}. */
function tool (...args) {
  const r = childProcess.spawnSync(TOOL, args, { encoding: 'utf8' });
  if (r.error) fatal(`cannot run ${TOOL}: ${r.error.message}`);
  return { status: r.status, lines: r.stdout.trim().split('\n').filter(Boolean), stderr: r.stderr.trim() };
}

/* ---- the scheme, on node's crypto ------------------------------------- */

function keyPair (priv) {
  const ecdh = crypto.createECDH('prime256v1');
  if (priv) ecdh.setPrivateKey(priv);
  else ecdh.generateKeys();
  return {
    ecdh,
    /* getPrivateKey drops leading zero bytes (1 key in 256): pad to 32. */
    priv: Buffer.concat([Buffer.alloc(32), ecdh.getPrivateKey()]).subarray(-32),
    pub: ecdh.getPublicKey(null, 'uncompressed'),
    pubc: ecdh.getPublicKey(null, 'compressed')
  };
}

/* The box of ephemeral key pair eph to recipient public key R (65 bytes). */
function senderBox (eph, R) {
  const Z = eph.ecdh.computeSecret(R);
  return box(eph.pub, R, Z);
}

function receiverBox (rcpt, E) {
  return box(E, rcpt.pub, rcpt.ecdh.computeSecret(E));
}

function box (E, R, Z) {
  const salt = Buffer.concat([E, R]);
  const prk = crypto.createHmac('sha256', salt).update(Z).digest();
  return { E, R, Z, salt, prk };
}

/* K || N: HKDF with node's own HKDF (from Z), checked against the single
 * HMAC block of RFC 5869 from PRK. */
function okmOf (b, serial) {
  const info = Buffer.concat([INFO_PREFIX, Buffer.from(serial, 'ascii')]);
  const okm = Buffer.from(crypto.hkdfSync('sha256', b.Z, b.salt, info, 28));
  const t1 = crypto.createHmac('sha256', b.prk).update(Buffer.concat([info, Buffer.from([1])])).digest();
  if (!t1.subarray(0, 28).equals(okm)) throw new Error('hkdfSync and HMAC disagree');
  return okm;
}

function seal (b, serial, seed) {
  const okm = okmOf(b, serial);
  const c = crypto.createCipheriv('aes-128-gcm', okm.subarray(0, 16), okm.subarray(16), { authTagLength: 16 });
  c.setAAD(Buffer.from(serial, 'ascii'));
  return Buffer.concat([c.update(seed), c.final(), c.getAuthTag()]);
}

/* The seed, or null if the tag does not verify. */
function open (b, serial, sealed) {
  if (sealed.length < 32 || sealed.length > 80) return null;
  const okm = okmOf(b, serial);
  const d = crypto.createDecipheriv('aes-128-gcm', okm.subarray(0, 16), okm.subarray(16), { authTagLength: 16 });
  d.setAAD(Buffer.from(serial, 'ascii'));
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
  } catch (e) {
    return null;
  }
}

/* ---- (a), (b): the known-answer vector -------------------------------- */

function loadKat () {
  const k = { entries: [] };
  let cur = null;
  for (const raw of fs.readFileSync(KAT, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sp = line.indexOf(' ');
    const name = line.slice(0, sp);
    const v = line.slice(sp + 1);
    if (name === 'serial') {
      cur = { serial: v };
      k.entries.push(cur);
    } else if (cur) {
      cur[name] = Buffer.from(v, 'hex');
    } else {
      k[name] = Buffer.from(v, 'hex');
    }
  }
  return k;
}

function katChecks () {
  let k;
  try {
    k = loadKat();
  } catch (e) {
    return fatal(`cannot read ${KAT}: ${e.message}`);
  }
  const eph = keyPair(k.eph_priv);
  const rcpt = keyPair(k.recipient_priv);
  check('KAT: recipient_pub = recipient_priv * G', rcpt.pub.equals(k.recipient_pub));
  check('KAT: eph_pub = eph_priv * G', eph.pub.equals(k.eph_pub));
  const b = senderBox(eph, rcpt.pub);
  check('KAT: z = x(e * R)', b.Z.equals(k.z), b.Z.toString('hex'));
  check('KAT: z = x(r * E) too', rcpt.ecdh.computeSecret(eph.pub).equals(k.z));
  check('KAT: prk = HKDF-Extract(E || R, z)', b.prk.equals(k.prk), b.prk.toString('hex'));
  check('KAT: at least 4 entries', k.entries.length >= 4, `${k.entries.length}`);
  for (const e of k.entries) {
    const okm = okmOf(b, e.serial);
    check(`KAT ${e.serial}: okm`, okm.equals(e.okm), okm.toString('hex'));
    const s = seal(b, e.serial, e.seed);
    check(`KAT ${e.serial}: sealed`, s.equals(e.sealed), s.toString('hex'));
    const o = open(receiverBox(rcpt, eph.pub), e.serial, e.sealed);
    check(`KAT ${e.serial}: node opens it`, o !== null && o.equals(e.seed));
  }
  // (b) otpca, from the same scalars
  const args = [];
  for (const e of k.entries) args.push(e.serial, e.seed.toString('hex'));
  const r = tool('seal', k.eph_priv.toString('hex'), k.recipient_pub.toString('hex'), ...args);
  check('KAT: otpca seals (exit 0)', r.status === 0, r.stderr);
  if (r.status === 0) {
    const [E, prk] = r.lines[0].split(' ');
    check('KAT: otpca E', E === k.eph_pub.toString('hex'), E);
    check('KAT: otpca PRK', prk === k.prk.toString('hex'), prk);
    k.entries.forEach((e, i) => check(`KAT ${e.serial}: otpca sealed`,
      r.lines[1 + i] === e.sealed.toString('hex'), r.lines[1 + i]));
  }
  const o = tool('open', k.recipient_priv.toString('hex'), k.eph_pub.toString('hex'),
    ...k.entries.flatMap((e) => [e.serial, e.sealed.toString('hex')]));
  check('KAT: otpca opens every entry', o.status === 0 &&
    k.entries.every((e, i) => o.lines[i] === e.seed.toString('hex')), o.stderr);
}

/* ---- (c), (d): fresh keys ---------------------------------------------- */

function randomSerial (len) {
  const b = crypto.randomBytes(len);
  let s = '';
  for (let i = 0; i < len; i++) s += ID_CHARS[b[i] % ID_CHARS.length];
  return s;
}

function randomEntries (round) {
  // Lengths at the edges first, then random ones.
  const fixed = [[1, 16], [64, 64], [11, 20], [32, 32]];
  const out = [];
  for (let i = 0; i < 6; i++) {
    const [sl, dl] = i < fixed.length && round % 2 === 0 ? fixed[i]
      : [1 + crypto.randomInt(64), 16 + crypto.randomInt(49)];
    out.push({ serial: randomSerial(sl), seed: crypto.randomBytes(dl) });
  }
  // Serials are unique within a box (PROTOCOL.md section 5.1).
  const seen = new Set();
  return out.filter((e) => !seen.has(e.serial) && seen.add(e.serial));
}

function flip (buf, at) {
  const b = Buffer.from(buf);
  b[at] ^= 0x01;
  return b;
}

function freshRound (round) {
  const rcpt = keyPair();
  const other = keyPair();
  const eph = keyPair();
  const entries = randomEntries(round);
  const compressed = round % 2 === 1;
  const tag = `round ${round} (recipient key ${compressed ? 33 : 65} bytes)`;
  const rarg = (compressed ? rcpt.pubc : rcpt.pub).toString('hex');
  const pairs = (f) => entries.flatMap((e) => [e.serial, f(e)]);
  const ctx = `r=${rcpt.priv.toString('hex')} e=${eph.priv.toString('hex')}`;

  // The same ephemeral scalar on both sides: the same bytes.
  const nb = senderBox(eph, rcpt.pub);
  const ours = entries.map((e) => seal(nb, e.serial, e.seed));
  const r = tool('seal', eph.priv.toString('hex'), rarg, ...pairs((e) => e.seed.toString('hex')));
  if (r.status !== 0) return check(`${tag}: otpca seals`, false, r.stderr + ' ' + ctx);
  const [E, prk] = r.lines[0].split(' ');
  check(`${tag}: same E and PRK from the same scalars`,
    E === eph.pub.toString('hex') && prk === nb.prk.toString('hex'), ctx);
  check(`${tag}: same sealed seeds from the same scalars`,
    entries.every((e, i) => r.lines[1 + i] === ours[i].toString('hex')), ctx);

  // node seals, otpca opens.
  const o = tool('open', rcpt.priv.toString('hex'), eph.pub.toString('hex'),
    ...pairs((e) => seal(nb, e.serial, e.seed).toString('hex')));
  check(`${tag}: node-sealed seeds open in otpca`, o.status === 0 &&
    entries.every((e, i) => o.lines[i] === e.seed.toString('hex')), o.stderr + ' ' + ctx);

  // otpca seals with its own fresh ephemeral key, node opens.
  const f = tool('fresh', rarg, ...pairs((e) => e.seed.toString('hex')));
  if (f.status !== 0) return check(`${tag}: otpca seals fresh`, false, f.stderr);
  const fE = Buffer.from(f.lines[0], 'hex');
  check(`${tag}: otpca's fresh E is new`, !fE.equals(eph.pub));
  const rb = receiverBox(rcpt, fE);
  check(`${tag}: otpca-sealed seeds open in node`, entries.every((e, i) => {
    const got = open(rb, e.serial, Buffer.from(f.lines[1 + i], 'hex'));
    return got !== null && got.equals(e.seed);
  }));

  // (d) refusals, both ways.
  const e0 = entries[0];
  const s0 = ours[0];
  const oursFlip = flip(s0, crypto.randomInt(s0.length));
  const x = tool('open', rcpt.priv.toString('hex'), eph.pub.toString('hex'), e0.serial, oursFlip.toString('hex'));
  check(`${tag}: a flipped byte is refused by otpca (DECRYPT)`, x.status === 1 && /DECRYPT/.test(x.stderr), x.stderr);
  const ws = (e0.serial[0] === 'x' ? 'y' : 'x') + e0.serial.slice(1); // same length, one byte off
  const y = tool('open', rcpt.priv.toString('hex'), eph.pub.toString('hex'), ws, s0.toString('hex'));
  check(`${tag}: another serial is refused by otpca (DECRYPT)`, y.status === 1 && /DECRYPT/.test(y.stderr), y.stderr);
  const z = tool('open', other.priv.toString('hex'), eph.pub.toString('hex'), e0.serial, s0.toString('hex'));
  check(`${tag}: another recipient key is refused by otpca (DECRYPT)`, z.status === 1 && /DECRYPT/.test(z.stderr), z.stderr);
  const offCurve = flip(eph.pub, 64);
  const w = tool('open', rcpt.priv.toString('hex'), offCurve.toString('hex'), e0.serial, s0.toString('hex'));
  check(`${tag}: a seedkey off the curve is refused by otpca (BAD_KEY)`, w.status === 1 && /BAD_KEY/.test(w.stderr), w.stderr);
  const theirs = Buffer.from(f.lines[1], 'hex');
  check(`${tag}: node refuses a flipped byte of otpca's`, open(rb, e0.serial, flip(theirs, crypto.randomInt(theirs.length))) === null);
  check(`${tag}: node refuses otpca's under another serial`, open(rb, ws, theirs) === null);
  check(`${tag}: node refuses otpca's with another key`, open(receiverBox(other, fE), e0.serial, theirs) === null);
}

function main () {
  console.log(`# seedbox_tool: ${TOOL}`);
  console.log(`# node ${process.version}, OpenSSL ${process.versions.openssl}`);
  katChecks();
  for (let round = 0; round < 16; round++) freshRound(round);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

try {
  main();
} catch (e) {
  console.error(e && e.stack ? e.stack : e);
  failed++;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}
