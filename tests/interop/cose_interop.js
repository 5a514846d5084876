#!/usr/bin/env node
/*
 * COSE_Sign1 interop: otpca (through cose_tool) against cose-js, an
 * independent COSE implementation (RFC 9052 section 4.2, ES256).
 *
 *   node cose_interop.js [PATH/TO/cose_tool]     (or COSE_TOOL=...)
 *
 * For several keys and payloads:
 *   (a) otpca signs, cose-js verifies and returns the same payload;
 *   (b) cose-js signs, otpca decodes strictly, verifies and returns it,
 *       and both encodings agree byte for byte apart from the signature;
 *   (c) a tampered signature or payload, or the wrong key, is refused by
 *       the other side, in both directions.
 * The last line is "N passed, N failed"; the exit status is 1 on any
 * failure. node_modules must hold exactly the versions of the lock file
 * (deploy/deps.sh, or tests/interop/setup.sh, installs them).
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const HERE = __dirname;

function fatal (msg) {
  console.error('cose_interop: ' + msg);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

/* Every package of the lock file present in node_modules at its version;
 * otherwise fail (never skip) and say how to install them. */
function checkInstalled () {
  const fix = 'run deploy/deps.sh (or tests/interop/setup.sh)';
  let lock;
  try {
    lock = JSON.parse(fs.readFileSync(path.join(HERE, 'package-lock.json'), 'utf8'));
  } catch (e) {
    fatal('cannot read tests/interop/package-lock.json: ' + e.message);
  }
  if (!fs.existsSync(path.join(HERE, 'node_modules'))) {
    fatal(`tests/interop/node_modules is missing (node packages cose-js, cbor): ${fix}`);
  }
  for (const [where, meta] of Object.entries(lock.packages || {})) {
    if (!where || meta.optional || meta.dev) continue;
    const manifest = path.join(HERE, where, 'package.json');
    let version;
    try {
      version = JSON.parse(fs.readFileSync(manifest, 'utf8')).version;
    } catch (e) {
      fatal(`tests/interop/${where} is missing: ${fix}`);
    }
    if (version !== meta.version) {
      fatal(`tests/interop/${where} is ${version}, the lock file wants ${meta.version}: ${fix}`);
    }
  }
}

checkInstalled();
const cose = require('cose-js');
const cbor = require('cbor');

const TOOL = process.argv[2] || process.env.COSE_TOOL;
if (!TOOL || !fs.existsSync(TOOL)) {
  fatal('cose_tool not found (pass its path as the first argument or in COSE_TOOL)');
}

/* P-256 group order, to tell high-S signatures. */
const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

let passed = 0;
let failed = 0;

function pass (name) {
  passed++;
  console.log('ok   ' + name);
}

function fail (name, detail) {
  failed++;
  console.log('FAIL ' + name + (detail ? ': ' + detail : ''));
}

function check (name, cond, detail) {
  if (cond) pass(name);
  else fail(name, detail);
}

/* Runs cose_tool; {status, stdout, stderr}. */
function tool (...args) {
  const r = childProcess.spawnSync(TOOL, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.error) fatal(`cannot run ${TOOL}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

/* cose_tool output that must succeed, as a Buffer. */
function toolOut (...args) {
  const r = tool(...args);
  if (r.status !== 0) throw new Error(`cose_tool ${args[0]} exited ${r.status}: ${r.stderr}`);
  return Buffer.from(r.stdout, 'hex');
}

/* cose-js verification: the payload, or throws. */
async function coseVerify (msg, key, options) {
  return cose.sign.verify(msg, { key: { x: key.x, y: key.y } }, options);
}

/* cose-js signing with our header layout. */
async function coseSign (payload, key, options) {
  const headers = { p: { alg: 'ES256' }, u: { kid: key.kid } };
  return cose.sign.create(headers, payload, { key: { d: key.d } }, options);
}

/* A key from a 32-byte private scalar: node derives the public key, which
 * must match what otpca derives. */
function makeKey (label, d) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const pub = ecdh.getPublicKey(null, 'uncompressed');
  return {
    label,
    d,
    dhex: d.toString('hex'),
    pub,
    pubhex: pub.toString('hex'),
    x: pub.subarray(1, 33),
    y: pub.subarray(33, 65),
    kid: crypto.createHash('sha256').update(pub).digest().subarray(0, 8)
  };
}

function flip (buf, at) {
  const b = Buffer.from(buf);
  b[at < 0 ? b.length + at : at] ^= 0x01;
  return b;
}

function sigOf (msg) {
  return msg.subarray(msg.length - 64);
}

function isHighS (sig) {
  return BigInt('0x' + sig.subarray(32).toString('hex')) > N / 2n;
}

/* The structure otpca promises: tag 18, [h'a10126', {4: kid}, payload, sig]. */
function checkShape (name, msg, key, payload) {
  let obj;
  try {
    obj = cbor.decodeFirstSync(msg);
  } catch (e) {
    return fail(name, 'not CBOR: ' + e.message);
  }
  const v = obj && obj.value;
  const ok = obj instanceof cbor.Tagged && obj.tag === 18 && Array.isArray(v) && v.length === 4 &&
    Buffer.isBuffer(v[0]) && v[0].toString('hex') === 'a10126' &&
    v[1] instanceof Map && v[1].size === 1 && Buffer.isBuffer(v[1].get(4)) &&
    v[1].get(4).equals(key.kid) && Buffer.isBuffer(v[2]) && v[2].equals(payload) &&
    Buffer.isBuffer(v[3]) && v[3].length === 64;
  check(name, ok, 'unexpected structure ' + msg.toString('hex').slice(0, 120));
}

async function expectCoseJsRejects (name, msg, key) {
  try {
    await coseVerify(msg, key);
    fail(name, 'cose-js accepted it');
  } catch (e) {
    pass(name + ' (' + e.message + ')');
  }
}

function expectOtpcaRejects (name, msg, key) {
  const r = tool('verify', key.pubhex, msg.toString('hex'));
  check(name + (r.status === 1 ? ' (' + r.stderr.replace(/^cose_tool: /, '') + ')' : ''),
    r.status === 1, `exit ${r.status}, want 1 ${r.stderr}`);
}

function expectOtpcaAccepts (name, msg, key, payload) {
  const r = tool('verify', key.pubhex, msg.toString('hex'));
  if (r.status !== 0) return fail(name, `exit ${r.status}: ${r.stderr}`);
  check(name, Buffer.from(r.stdout, 'hex').equals(payload), 'payload differs');
}

async function expectCoseJsAccepts (name, msg, key, payload, options) {
  try {
    const got = await coseVerify(msg, key, options);
    check(name, Buffer.isBuffer(got) && got.equals(payload), 'payload differs');
  } catch (e) {
    fail(name, 'cose-js refused it: ' + e.message);
  }
}

function payloads () {
  const seq = (n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
  return [
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.from([0x00])],
    ['short text', Buffer.from('hello, otpca')],
    ['23 bytes', seq(23)], // longest byte string with a 1-byte head
    ['24 bytes', seq(24)], // shortest with a 2-byte head
    ['255 bytes', seq(255)],
    ['256 bytes', seq(256)], // shortest with a 3-byte head
    ['1000 bytes', Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31 + (i >> 8)) & 0xff))]
  ];
}

async function main () {
  const one = Buffer.alloc(32);
  one[31] = 1;
  const keys = [
    makeKey('key A', crypto.createHash('sha256').update('otpca interop key A').digest()),
    makeKey('key B', crypto.createHash('sha256').update('otpca interop key B').digest()),
    makeKey('key d=1', one), // public key = the generator; private scalar mostly zero bytes
    // A new key each run, printed below so that a failure can be rerun.
    makeKey('fresh key', Buffer.from(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'jwk' }).d, 'base64url'))
  ];
  const fresh = keys[3];
  console.log(`# cose_tool: ${TOOL}`);
  console.log(`# cose-js ${require('cose-js/package.json').version}, cbor ${require('cbor/package.json').version}, node ${process.version}`);
  console.log(`# fresh key d = ${fresh.dhex}`);

  for (const key of keys) {
    const r = tool('pub', key.dhex);
    check(`${key.label}: otpca and node derive the same public key`,
      r.status === 0 && r.stdout === key.pubhex, `otpca ${r.stdout} node ${key.pubhex}`);
  }
  const other = keys[1];

  for (const key of keys) {
    for (const [plabel, payload] of payloads()) {
      const tag = `${key.label}, ${plabel}`;
      // (a) otpca -> cose-js
      const ours = toolOut('sign', key.dhex, payload.toString('hex'));
      checkShape(`${tag}: otpca output has the promised shape`, ours, key, payload);
      await expectCoseJsAccepts(`${tag}: otpca-signed verifies in cose-js`, ours, key, payload);
      // (b) cose-js -> otpca
      const theirs = await coseSign(payload, key);
      expectOtpcaAccepts(`${tag}: cose-js-signed verifies in otpca`, theirs, key, payload);
      check(`${tag}: both encodings identical apart from the signature`,
        theirs.length === ours.length && theirs.subarray(0, -64).equals(ours.subarray(0, -64)),
        `cose-js ${theirs.subarray(0, -64).toString('hex').slice(0, 120)} otpca ${ours.subarray(0, -64).toString('hex').slice(0, 120)}`);
      // (c) tampering and the wrong key, both ways
      await expectCoseJsRejects(`${tag}: otpca sig, s tampered, cose-js refuses`, flip(ours, -1), key);
      await expectCoseJsRejects(`${tag}: otpca sig, r tampered, cose-js refuses`, flip(ours, -64), key);
      expectOtpcaRejects(`${tag}: cose-js sig, s tampered, otpca refuses`, flip(theirs, -1), key);
      expectOtpcaRejects(`${tag}: cose-js sig, r tampered, otpca refuses`, flip(theirs, -64), key);
      if (payload.length) {
        await expectCoseJsRejects(`${tag}: otpca payload tampered, cose-js refuses`,
          flip(ours, -65), key);
        expectOtpcaRejects(`${tag}: cose-js payload tampered, otpca refuses`, flip(theirs, -65), key);
      }
      if (key !== other) {
        await expectCoseJsRejects(`${tag}: otpca-signed, wrong key, cose-js refuses`, ours, other);
        expectOtpcaRejects(`${tag}: cose-js-signed, wrong key, otpca refuses`, theirs, other);
      }
    }
  }

  // A real protocol message: an EnrollRequest signed in place by
  // otpca_msg_sign (the begin/end path), then the same payload from cose-js.
  {
    const key = keys[0];
    const ours = toolOut('msg', key.dhex);
    let payload = null;
    try {
      payload = cbor.decodeFirstSync(ours).value[2];
      const m = cbor.decodeFirstSync(payload);
      check('EnrollRequest: payload is a map of type 3 carrying the signer key',
        m instanceof Map && m.get(0) === 3 && Buffer.isBuffer(m.get(5)) && m.get(5).equals(key.pub),
        'payload ' + payload.toString('hex'));
    } catch (e) {
      fail('EnrollRequest: payload decodes', e.message);
    }
    if (payload) {
      checkShape('EnrollRequest: otpca output has the promised shape', ours, key, payload);
      await expectCoseJsAccepts('EnrollRequest: otpca-signed verifies in cose-js', ours, key, payload);
      const theirs = await coseSign(payload, key);
      expectOtpcaAccepts('EnrollRequest: cose-js-signed verifies in otpca', theirs, key, payload);
      await expectCoseJsRejects('EnrollRequest: otpca sig tampered, cose-js refuses', flip(ours, -1), key);
      expectOtpcaRejects('EnrollRequest: cose-js sig tampered, otpca refuses', flip(theirs, -1), key);
    }
  }

  // Signature encodings at the edges: r or s with a leading zero byte (the
  // fixed-width r || s must keep it) and high-S values (neither side
  // normalises S, both must accept it). cose-js signs deterministically
  // (RFC 6979), so a counter finds its cases reproducibly.
  {
    const key = keys[0];
    const found = { theirsZero: null, theirsHigh: null, theirsLow: null };
    for (let i = 0; i < 5000 && !(found.theirsZero && found.theirsHigh && found.theirsLow); i++) {
      const payload = Buffer.from(`edge ${i}`);
      const msg = await coseSign(payload, key);
      const sig = sigOf(msg);
      if (!found.theirsZero && (sig[0] === 0 || sig[32] === 0)) found.theirsZero = [msg, payload];
      if (!found.theirsHigh && isHighS(sig)) found.theirsHigh = [msg, payload];
      if (!found.theirsLow && !isHighS(sig)) found.theirsLow = [msg, payload];
    }
    for (const [what, hit] of [['leading-zero r or s', found.theirsZero],
      ['high-S', found.theirsHigh], ['low-S', found.theirsLow]]) {
      if (!hit) fail(`cose-js ${what} signature`, 'none found');
      else expectOtpcaAccepts(`cose-js ${what} signature verifies in otpca`, hit[0], key, hit[1]);
    }
    const mine = { zero: null, high: null, low: null };
    for (let i = 0; i < 3000 && !(mine.zero && mine.high && mine.low); i++) {
      const payload = Buffer.from('edge');
      const msg = toolOut('sign', key.dhex, payload.toString('hex'));
      const sig = sigOf(msg);
      if (!mine.zero && (sig[0] === 0 || sig[32] === 0)) mine.zero = [msg, payload];
      if (!mine.high && isHighS(sig)) mine.high = [msg, payload];
      if (!mine.low && !isHighS(sig)) mine.low = [msg, payload];
    }
    for (const [what, hit] of [['leading-zero r or s', mine.zero], ['high-S', mine.high],
      ['low-S', mine.low]]) {
      if (!hit) fail(`otpca ${what} signature`, 'none found in 3000 signatures');
      else await expectCoseJsAccepts(`otpca ${what} signature verifies in cose-js`, hit[0], key, hit[1]);
    }
  }

  // What otpca's strict decoder refuses on purpose, checked against forms
  // cose-js can produce: untagged COSE_Sign1 (cose-js option excludetag)
  // and the algorithm in the unprotected header.
  {
    const key = keys[0];
    const payload = Buffer.from('strict');
    const untagged = await coseSign(payload, key, { excludetag: true });
    await expectCoseJsAccepts('untagged cose-js output verifies in cose-js (defaultType Sign1)',
      untagged, key, payload, { defaultType: cose.sign.Sign1Tag });
    expectOtpcaRejects('untagged COSE_Sign1 refused by otpca (tag 18 required)', untagged, key);
    const algU = await cose.sign.create({ p: {}, u: { alg: 'ES256', kid: key.kid } }, payload,
      { key: { d: key.d } });
    expectOtpcaRejects('alg in the unprotected header refused by otpca', algU, key);
  }

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  failed++;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
});
