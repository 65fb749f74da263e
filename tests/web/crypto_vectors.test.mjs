// crypto_vectors.test.mjs - the browser's end-to-end formats (clients/web/js/crypto/) against
// media/'s, both ways (issue 21, item 3): in Chromium, under kizunad's real CSP, the vendored
// libsodium loads; every file of tests/vectors/e2ee is reproduced byte for byte (deterministic
// outputs, and ciphertexts sealed with the stored nonce, key and header) and every stored
// ciphertext opens, and refuses a flipped byte; then what the browser makes with fresh keys and
// nonces (a device record, two versions of a device list, a policy, an envelope, a photo
// message, blobs) is verified and opened by the C code (tests/tools/kz-e2ee-check.c, on
// media/), what the C code makes is opened by the browser, a tampered blob fails with the same
// distinct result name on both sides, and the blob size buckets agree at every bucket edge up to
// 1 TiB. No network: the crypto is served by kizunad from clients/web/vendor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { startServer, launchBrowser, newPage, httpRaw, SOURCE_DIR } from './lib/harness.mjs';

const VECTORS = path.join(SOURCE_DIR, 'tests', 'vectors', 'e2ee');
const TOOL = process.env.KZ_E2EE_CHECK_PATH ||
    path.join(path.dirname(process.env.KIZUNAD_PATH || path.join(SOURCE_DIR, 'build', 'web', 'kizunad')),
        'tests', 'kz-e2ee-check');
const FILES = ['device_id', 'domains', 'devkey', 'policy', 'keycheck', 'devlist', 'safety', 'envelope', 'photo', 'blob'];
const vectors = Object.fromEntries(FILES.map((f) => [f, JSON.parse(readFileSync(path.join(VECTORS, f + '.json'), 'utf8'))]));

let srv, browser, page, tmp;

// Runs the C tool: {code, out} (stdout trimmed); code 2 (misuse) fails the test at once.
function c(...args) {
    return new Promise((resolve, reject) => {
        execFile(TOOL, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
            const code = err ? err.code : 0;
            if (typeof code !== 'number' || code > 1)
                reject(new Error(`kz-e2ee-check ${args[0]}: ${err?.message} ${stderr}`));
            else
                resolve({ code, out: stdout.trim() });
        });
    });
}

before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'kz-e2ee-web-'));
    srv = await startServer();
    browser = await launchBrowser();
    page = await newPage(browser);
    await page.goto(srv.url + '/', { waitUntil: 'load' });
});

after(async () => {
    await browser?.close();
    await srv?.stop();
    srv?.remove();
    if (tmp)
        rmSync(tmp, { recursive: true, force: true });
});

test('kizunad serves the vendored libsodium, and it runs in Chromium under the CSP', async () => {
    for (const f of ['libsodium-wrappers.mjs', 'libsodium.mjs']) {
        const r = await httpRaw(`${srv.url}/vendor/libsodium/${f}`);
        assert.equal(r.status, 200, f);
        assert.equal(r.headers['content-type'], 'text/javascript; charset=utf-8', f);
        assert.match(r.headers['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval';/, f);
    }
    const version = await page.evaluate(async () => {
        const { sodium } = await import('/js/crypto/sodium.js');
        const s = await sodium();
        return s.sodium_version_string();
    });
    assert.match(version, /^1\.0\.\d+$/);
    assert.deepEqual(page.problems, []);
});

test('the browser reproduces every vector file and opens every stored ciphertext', async () => {
    const results = await page.evaluate(async (V) => {
        const { hex, unhex } = await import('/js/crypto/sodium.js');
        const K = await import('/js/crypto/keys.js');
        const P = await import('/js/crypto/photo.js');
        const B = await import('/js/crypto/blob.js');
        const D = await import('/js/crypto/devlist.js');
        const S = await import('/js/crypto/safety.js');
        const out = []; // [what, got, want]
        const eq = (what, got, want) => out.push([what, got, want]);
        const code = async (what, p, want) => {
            try { await p; eq(what, 'accepted', want); } catch (e) { eq(what, e.code || String(e), want); }
        };
        const keyOf = (k) => K.deviceKeysNew({ signSeed: unhex(k.sign_seed_hex), boxSk: unhex(k.box_sk_hex) });
        const flips = async (what, bytes, open) => { // every byte flipped must be refused
            let accepted = 0;
            for (let i = 0; i < bytes.length; i++) {
                const b = bytes.slice();
                b[i] ^= 0x01;
                try { await open(b); accepted++; } catch { /* refused */ }
            }
            eq(what + ': flipped bytes accepted', accepted, 0);
        };

        for (const v of V.device_id.vectors)
            eq('device_id ' + v.sign_pk_hex, await K.deviceId(unhex(v.sign_pk_hex)), v.device_id);

        const dk = await keyOf(V.domains.key);
        const msg = unhex(V.domains.message_hex);
        eq('domain names', Object.values(K.DOMAIN).sort().join(' '),
            V.domains.domains.map((d) => d.domain).sort().join(' '));
        for (const d of V.domains.domains) {
            eq('sign ' + d.name, hex(await K.sign(d.domain, msg, dk.signSk)), d.signature_hex);
            eq('verify ' + d.name, await K.verify(d.domain, msg, dk.signPk, unhex(d.signature_hex)), true);
            for (const o of V.domains.domains.filter((x) => x.domain !== d.domain))
                eq(`${d.name} under ${o.name}`, await K.verify(o.domain, msg, dk.signPk, unhex(d.signature_hex)), false);
        }

        for (const v of V.devkey.vectors) {
            const k = await keyOf(v.key);
            eq('key derivation sign ' + v.user, hex(k.signPk), v.key.sign_pk_hex);
            eq('key derivation box ' + v.user, hex(k.boxPk), v.key.box_pk_hex);
            eq('devkey record ' + v.user, hex(K.devkeyRecord(v.user, v.device_id, k.signPk, k.boxPk)), v.signed_hex);
            eq('devkey sig ' + v.user, hex(await K.devkeySign(v.user, v.device_id, k)), v.signature_hex);
            eq('devkey verify ' + v.user, await K.devkeyVerify(v.user, v.device_id, k.signPk, k.boxPk, unhex(v.signature_hex)), true);
            eq('devkey other user ' + v.user, await K.devkeyVerify(v.user + 'x', v.device_id, k.signPk, k.boxPk, unhex(v.signature_hex)), false);
        }

        for (const v of V.policy.vectors) {
            const k = await keyOf(v.key);
            eq('policy record ' + v.login, hex(K.policyRecord(v.login, v.history)), v.signed_hex);
            eq('policy sig ' + v.login, hex(await K.policySign(v.login, v.history, k.signSk)), v.signature_hex);
            eq('policy verify ' + v.login, await K.policyVerify(v.login, v.history, k.signPk, unhex(v.signature_hex)), true);
            eq('policy other history ' + v.login, await K.policyVerify(v.login, 'all', k.signPk, unhex(v.signature_hex)), false);
        }

        for (const v of V.keycheck.vectors)
            eq('keycheck ' + v.room, hex(await P.epochCheck(v.room, v.owner, v.epoch, unhex(v.key_hex))), v.check_hex);

        const lists = [];
        for (const [i, v] of V.devlist.lists.entries()) {
            const { encoding, list } = await D.devlistEncode({
                login: v.login, seq: v.seq, prev: unhex(v.prev_hex),
                devices: v.devices.map((d) => ({ signPk: unhex(d.sign_pk_hex), boxPk: unhex(d.box_pk_hex) })),
            });
            eq(`devlist ${i} encoding`, hex(encoding), v.encoding_hex);
            eq(`devlist ${i} hash`, hex(list.hash), v.hash_hex);
            eq(`devlist ${i} ids`, list.devices.map((d) => d.id).sort().join(), v.devices.map((d) => d.id).sort().join());
            const signer = await keyOf(V.devlist.keys.find((k) => k.id === v.signer));
            eq(`devlist ${i} signature`, hex(await D.devlistSign(encoding, signer.signSk)), v.signature_hex);
            const dec = await D.devlistDecode(unhex(v.encoding_hex));
            eq(`devlist ${i} decoded`, [dec.login, String(dec.seq), hex(dec.hash)].join(), [v.login, String(v.seq), v.hash_hex].join());
            lists.push(dec);
            await code(`devlist ${i} follows`, D.devlistFollows(v.follows === null ? null : lists[v.follows], dec,
                unhex(v.encoding_hex), v.signer, unhex(v.signature_hex)), 'accepted');
            const badSig = unhex(v.signature_hex);
            badSig[5] ^= 1;
            await code(`devlist ${i} forged signature`, D.devlistFollows(v.follows === null ? null : lists[v.follows], dec,
                unhex(v.encoding_hex), v.signer, badSig), 'not_authentic');
        }
        // A non-root version on its own does not stand; a version does not follow itself.
        await code('devlist 1 without its predecessor', D.devlistFollows(null, lists[1],
            unhex(V.devlist.lists[1].encoding_hex), V.devlist.lists[1].signer, unhex(V.devlist.lists[1].signature_hex)), 'format');
        await code('devlist 1 after itself', D.devlistFollows(lists[1], lists[1],
            unhex(V.devlist.lists[1].encoding_hex), V.devlist.lists[1].signer, unhex(V.devlist.lists[1].signature_hex)), 'format');
        for (const m of V.devlist.malformed)
            await code('devlist malformed: ' + m.why, D.devlistDecode(unhex(m.encoding_hex)), 'format');

        const dev = (id) => {
            const k = V.safety.keys.find((x) => x.id === id);
            return { id, signPk: unhex(k.sign_pk_hex), boxPk: unhex(k.box_pk_hex) };
        };
        for (const v of V.safety.vectors) {
            const a = v.devices_a.map(dev), b = v.devices_b.map(dev);
            eq('fingerprint ' + v.user_a, await S.fingerprint(v.user_a, a.slice().reverse()), v.fingerprint_a);
            eq('fingerprint ' + v.user_b, await S.fingerprint(v.user_b, b), v.fingerprint_b);
            eq('safety number a-b', await S.safetyNumber(v.user_a, a, v.user_b, b), v.safety_number);
            eq('safety number b-a', await S.safetyNumber(v.user_b, b, v.user_a, a), v.safety_number);
        }

        const snd = await keyOf(V.envelope.sender), rcp = await keyOf(V.envelope.recipient);
        for (const [i, v] of V.envelope.vectors.entries()) {
            eq(`envelope ${i} seal`, hex(await K.envelopeSeal(unhex(v.plain_hex), snd.boxSk, rcp.boxPk, unhex(v.nonce_hex))), v.envelope_hex);
            eq(`envelope ${i} open`, hex(await K.envelopeOpen(unhex(v.envelope_hex), snd.boxPk, rcp.boxSk)), v.plain_hex);
            await flips(`envelope ${i}`, unhex(v.envelope_hex), (b) => K.envelopeOpen(b, snd.boxPk, rcp.boxSk));
            await code(`envelope ${i} wrong recipient`, K.envelopeOpen(unhex(v.envelope_hex), snd.boxPk, snd.boxSk), 'not_authentic');
        }

        const pkey = unhex(V.photo.key_hex);
        for (const [i, v] of V.photo.vectors.entries()) {
            const m = unhex(v.message_hex);
            eq(`photo ${i} ad`, hex(P.photoAd(v.ad)), v.ad_hex);
            eq(`photo ${i} padded_len`, P.photoPaddedLen(m.length), v.padded_len);
            eq(`photo ${i} seal`, hex(await P.photoSeal(v.ad, m, pkey, unhex(v.nonce_hex))), v.sealed_hex);
            eq(`photo ${i} open`, hex(await P.photoOpen(v.ad, unhex(v.sealed_hex), pkey)), v.message_hex);
            await flips(`photo ${i}`, unhex(v.sealed_hex), (b) => P.photoOpen(v.ad, b, pkey));
            for (const [f, x] of [['seq', v.ad.seq + 1], ['ts', v.ad.ts + 1], ['room', v.ad.room + 'x'], ['device', 'x'], ['epoch', 'x']])
                await code(`photo ${i} another ${f}`, P.photoOpen({ ...v.ad, [f]: x }, unhex(v.sealed_hex), pkey), 'not_authentic');
        }
        for (const v of V.photo.refused)
            await code('photo refused: ' + v.why, P.photoOpen(v.ad, unhex(v.sealed_hex), pkey), 'not_authentic');

        for (const v of V.blob.padded_len)
            eq('blob padded_len ' + v.n, B.blobPaddedLen(v.n), v.padded);
        const b64 = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
        const toB64 = (b) => { let s = ''; for (const x of b) s += String.fromCharCode(x); return btoa(s); };
        for (const v of V.blob.vectors) {
            const plain = v.plain_hex !== undefined ? unhex(v.plain_hex)
                : Uint8Array.from({ length: v.plain_len }, (_, j) => (7 * j + 3) % 251);
            const r = await B.blobEncrypt(plain, { key: unhex(v.key_hex), header: unhex(v.header_hex) });
            eq(`blob ${v.about} bytes`, toB64(r.blob), v.blob_b64);
            eq(`blob ${v.about} id`, hex(r.hash), v.blob_id_hex);
            eq(`blob ${v.about} lengths`, [r.blob.length, r.paddedLen].join(), [v.blob_len, v.padded_len].join());
            const blob = b64(v.blob_b64), key = unhex(v.key_hex), id = unhex(v.blob_id_hex);
            eq(`blob ${v.about} open`, hex(await B.blobDecrypt(blob, key, { expectHash: id, plainLen: v.plain_len })), hex(plain));
            eq(`blob ${v.about} open, length unknown`, (await B.blobDecrypt(blob, key)).length, v.padded_len);
            const wrong = key.slice();
            wrong[0] ^= 1;
            await code(`blob ${v.about} wrong key`, B.blobDecrypt(blob, wrong), 'blob_tampered');
            await code(`blob ${v.about} other id`, B.blobDecrypt(blob, key, { expectHash: new Uint8Array(32) }), 'blob_hash');
            await code(`blob ${v.about} other length`, B.blobDecrypt(blob, key, { plainLen: v.padded_len + 1 }), 'blob_length');
        }
        return out;
    }, vectors);
    assert.ok(results.length > 150, `${results.length} checks`);
    for (const [what, got, want] of results)
        assert.deepEqual(got, want, what);
});

// Flips one byte at each position and asks both sides; their result names must agree.
async function tamperBoth(name, blob, keyHex, idHex, plainLen, positions) {
    const seen = {};
    for (const pos of positions) {
        const b = Buffer.from(blob);
        b[pos] ^= 0x40;
        const file = path.join(tmp, `${name}-${pos}.kzb`);
        writeFileSync(file, b);
        const cr = await c('blob-open', file, keyHex, idHex, String(plainLen));
        assert.equal(cr.code, 1, `C opened ${name} with byte ${pos} flipped`);
        const js = await page.evaluate(async (bHex, k, id, len) => {
            const { unhex } = await import('/js/crypto/sodium.js');
            const { blobDecrypt } = await import('/js/crypto/blob.js');
            try {
                await blobDecrypt(unhex(bHex), unhex(k), { expectHash: unhex(id), plainLen: len });
                return 'accepted';
            } catch (e) { return e.code; }
        }, b.toString('hex'), keyHex, idHex, plainLen);
        assert.equal(js, cr.out, `${name}, byte ${pos} flipped: browser ${js}, C ${cr.out}`);
        seen[pos] = js;
    }
    return seen;
}

test('what the browser makes, the C code verifies and opens; a tampered blob fails alike', async () => {
    const plain = randomBytes(200000); // four chunks
    const made = await page.evaluate(async (plainHex) => {
        const { hex, unhex, utf8 } = await import('/js/crypto/sodium.js');
        const K = await import('/js/crypto/keys.js');
        const P = await import('/js/crypto/photo.js');
        const B = await import('/js/crypto/blob.js');
        const D = await import('/js/crypto/devlist.js');
        const user = '佐藤@biei.example.jp';
        const k1 = await K.deviceKeysNew(), k2 = await K.deviceKeysNew(), k3 = await K.deviceKeysNew();
        const id1 = await K.deviceId(k1.signPk);
        const v1 = await D.devlistEncode({ login: user, seq: 1, prev: null, devices: [k1, k2] });
        const v2 = await D.devlistEncode({ login: user, seq: 2, prev: v1.list.hash, devices: [k3, k2, k1] });
        const epochKey = (await import('/js/crypto/sodium.js')).unhex('00'.repeat(32)).map((_, i) => (i * 37 + 11) & 255);
        const ad = { room: 'RoomIdAbc_-', epoch: 'ep-7', device: id1, seq: 3, ts: Date.now() };
        const message = JSON.stringify({ caption: '橋が流された', gps: { lat: 43.588, lon: 142.466 }, captured_at: '2026-11-30T09:12:00' });
        const blob = await B.blobEncrypt(unhex(plainHex));
        return {
            user, id1,
            signPk1: hex(k1.signPk), boxPk1: hex(k1.boxPk), boxSk1: hex(k1.boxSk),
            devkeySig: hex(await K.devkeySign(user, id1, k1)),
            policySig: hex(await K.policySign(user, 'joined', k1.signSk)),
            v1: hex(v1.encoding), v1sig: hex(await D.devlistSign(v1.encoding, k1.signSk)),
            v2: hex(v2.encoding), v2sig: hex(await D.devlistSign(v2.encoding, k2.signSk)),
            v2ids: v2.list.devices.map((d) => d.id),
            v2hash: hex(v2.list.hash),
            k2id: await K.deviceId(k2.signPk),
            ad, epochKey: hex(epochKey), message: hex(utf8(message)),
            photo: hex(await P.photoSeal(ad, message, epochKey)),
            blob: hex(blob.blob), blobKey: hex(blob.key), blobId: hex(blob.hash), blobPadded: blob.paddedLen,
        };
    }, plain.toString('hex'));

    assert.equal((await c('devkey', made.user, made.id1, made.signPk1, made.boxPk1, made.devkeySig)).out, 'ok');
    assert.equal((await c('devkey', 'sato@biei.example.jp', made.id1, made.signPk1, made.boxPk1, made.devkeySig)).out, 'bad_signature');
    assert.equal((await c('policy', made.user, 'joined', made.signPk1, made.policySig)).out, 'ok');

    const r1 = await c('devlist', made.v1, made.id1, made.v1sig);
    assert.equal(r1.code, 0, r1.out);
    const r2 = await c('devlist', made.v2, made.k2id, made.v2sig, made.v1);
    assert.equal(r2.code, 0, r2.out);
    const [login, seq, n, hash, ...ids] = r2.out.split(' ');
    assert.deepEqual([login, seq, n], [made.user, '2', '3']);
    assert.equal(hash, made.v2hash, 'the same list hash');
    assert.deepEqual(ids, made.v2ids, 'C sorts and names the devices as the browser did');
    assert.equal((await c('devlist', made.v2, made.k2id, made.v2sig)).out, 'format', 'v2 is no root');

    // An envelope from the browser's device to the recipient of the vectors, opened by C.
    const rcp = vectors.envelope.recipient;
    const plainEnv = Buffer.from('{"from":"' + made.id1 + '","to":"' + rcp.id + '","key":"AAAA"}').toString('hex');
    const env = await page.evaluate(async (p, sk, pk) => {
        const { hex, unhex } = await import('/js/crypto/sodium.js');
        const K = await import('/js/crypto/keys.js');
        return hex(await K.envelopeSeal(unhex(p), unhex(sk), unhex(pk)));
    }, plainEnv, made.boxSk1, rcp.box_pk_hex);
    assert.deepEqual(await c('envelope-open', env, made.boxPk1, rcp.box_sk_hex), { code: 0, out: plainEnv });

    const a = made.ad;
    assert.deepEqual(await c('photo-open', a.room, a.epoch, a.device, String(a.seq), String(a.ts), made.epochKey, made.photo),
        { code: 0, out: made.message });
    assert.deepEqual(await c('photo-open', a.room, a.epoch, a.device, String(a.seq + 1), String(a.ts), made.epochKey, made.photo),
        { code: 1, out: 'not_authentic' });

    const file = path.join(tmp, 'browser.kzb');
    writeFileSync(file, Buffer.from(made.blob, 'hex'));
    const want = createHash('blake2b512').update(plain).digest('hex'); // only to compare below
    const out = path.join(tmp, 'browser.plain');
    const br = await c('blob-open', file, made.blobKey, made.blobId, String(plain.length), '-o', out);
    assert.equal(br.code, 0, br.out);
    assert.equal(br.out.split(' ')[0], String(plain.length));
    assert.equal(createHash('blake2b512').update(readFileSync(out)).digest('hex'), want);
    assert.equal(made.blobPadded, Number((await c('padded', String(plain.length))).out));

    // Tampering: a chunk byte in each chunk, the length field, the header, the last tag, and
    // past the end; both sides must give the same distinct result.
    const blob = Buffer.from(made.blob, 'hex');
    const seen = await tamperBoth('browser-blob', blob, made.blobKey, made.blobId, plain.length,
        [3, 4, 12, 20, 41, 100, 41 + 65553 + 7, 41 + 2 * 65553 + 9, blob.length - 1]);
    assert.equal(seen[100], 'blob_tampered');
    assert.equal(seen[41 + 65553 + 7], 'blob_tampered');
    assert.equal(seen[3], 'blob_format');
    const reordered = Buffer.concat([blob.subarray(0, 41 + 65553), blob.subarray(41 + 2 * 65553, 41 + 3 * 65553),
        blob.subarray(41 + 65553, 41 + 2 * 65553), blob.subarray(41 + 3 * 65553)]);
    writeFileSync(file, reordered);
    assert.deepEqual(await c('blob-open', file, made.blobKey, made.blobId, String(plain.length)), { code: 1, out: 'blob_reordered' });
    const js = await page.evaluate(async (bHex, k) => {
        const { unhex } = await import('/js/crypto/sodium.js');
        const { blobDecrypt } = await import('/js/crypto/blob.js');
        try { await blobDecrypt(unhex(bHex), unhex(k)); return 'accepted'; } catch (e) { return e.code; }
    }, reordered.toString('hex'), made.blobKey);
    assert.equal(js, 'blob_reordered');
    for (const [cut, name] of [[blob.length - 5, 'blob_truncated'], [41 + 3 * 65553, 'blob_no_final'], [30, 'blob_truncated']]) {
        writeFileSync(file, blob.subarray(0, cut));
        assert.deepEqual(await c('blob-open', file, made.blobKey, made.blobId, String(plain.length)), { code: 1, out: name });
        const jsr = await page.evaluate(async (bHex, k) => {
            const { unhex } = await import('/js/crypto/sodium.js');
            const { blobDecrypt } = await import('/js/crypto/blob.js');
            try { await blobDecrypt(unhex(bHex), unhex(k)); return 'accepted'; } catch (e) { return e.code; }
        }, blob.subarray(0, cut).toString('hex'), made.blobKey);
        assert.equal(jsr, name, `cut at ${cut}`);
    }
    const longer = Buffer.concat([blob, Buffer.from([0])]);
    writeFileSync(file, longer);
    assert.deepEqual(await c('blob-open', file, made.blobKey, made.blobId, String(plain.length)), { code: 1, out: 'blob_trailing' });
    assert.equal(await page.evaluate(async (bHex, k) => {
        const { unhex } = await import('/js/crypto/sodium.js');
        const { blobDecrypt } = await import('/js/crypto/blob.js');
        try { await blobDecrypt(unhex(bHex), unhex(k)); return 'accepted'; } catch (e) { return e.code; }
    }, longer.toString('hex'), made.blobKey), 'blob_trailing');
});

test('what the C code makes with fresh keys and nonces, the browser opens', async () => {
    const rcp = vectors.envelope.recipient, snd = vectors.envelope.sender;
    const plainEnv = Buffer.from('{"from":"' + snd.id + '","to":"' + rcp.id + '","epoch":"e9"}').toString('hex');
    const env = await c('envelope-seal', plainEnv, snd.box_sk_hex, rcp.box_pk_hex);
    const key = randomBytes(32).toString('hex');
    const ad = { room: '災害対策本部', epoch: 'e9', device: snd.id, seq: 12, ts: 1767225600123 };
    const msg = Buffer.from(JSON.stringify({ caption: 'カナリア', gps: { lat: -33.5, lon: -70.25 } })).toString('hex');
    const photo = await c('photo-seal', ad.room, ad.epoch, ad.device, String(ad.seq), String(ad.ts), key, msg);
    const plain = randomBytes(65536 * 2 + 5);
    const inFile = path.join(tmp, 'c.plain'), blobFile = path.join(tmp, 'c.kzb');
    writeFileSync(inFile, plain);
    const [bkey, bid, blen, bpad] = (await c('blob-seal', inFile, blobFile)).out.split(' ');
    const blob = readFileSync(blobFile);
    assert.equal(blob.length, Number(blen));

    const got = await page.evaluate(async (a) => {
        const { hex, unhex } = await import('/js/crypto/sodium.js');
        const K = await import('/js/crypto/keys.js');
        const P = await import('/js/crypto/photo.js');
        const B = await import('/js/crypto/blob.js');
        const r = {};
        r.env = hex(await K.envelopeOpen(unhex(a.env), unhex(a.sndPk), unhex(a.rcpSk)));
        r.photo = hex(await P.photoOpen(a.ad, unhex(a.photo), unhex(a.key)));
        const out = await B.blobDecrypt(unhex(a.blob), unhex(a.bkey), { expectHash: unhex(a.bid), plainLen: a.plainLen });
        r.blob = hex(out);
        r.id = hex(await B.blobHash(unhex(a.blob)));
        r.padded = B.blobPaddedLen(a.plainLen);
        return r;
    }, { env: env.out, sndPk: snd.box_pk_hex, rcpSk: rcp.box_sk_hex, ad, photo: photo.out, key,
        blob: blob.toString('hex'), bkey, bid, plainLen: plain.length });
    assert.equal(got.env, plainEnv);
    assert.equal(got.photo, msg);
    assert.equal(got.blob, plain.toString('hex'));
    assert.equal(got.id, bid, 'the blob id is BLAKE2b-256 of the blob on both sides');
    assert.equal(got.padded, Number(bpad));
});

test('device lists are pinned: a newer version is taken only if it follows (crypto/trust.js)', async () => {
    const r = await page.evaluate(async (V) => {
        const { unhex } = await import('/js/crypto/sodium.js');
        const { b64u } = await import('/js/crypto/device.js');
        const { walk } = await import('/js/crypto/trust.js');
        const L = V.devlist.lists;
        const entry = async (v, flip) => {
            const sig = unhex(v.signature_hex);
            if (flip) sig[3] ^= 1;
            return { login: v.login, seq: v.seq, list: await b64u(unhex(v.encoding_hex)), by: v.signer, sig: await b64u(sig) };
        };
        const all = [await entry(L[0]), await entry(L[1]), await entry(L[2])];
        const pinOf = (i) => ({ list: unhex(L[i].encoding_hex), ever: L[i].devices.map((d) => d.id) });
        const w = async (lists, pin) => {
            const x = await walk({ user: L[0].login, bare: L[0].login, lists, pin });
            return { seq: Number(x.current?.seq ?? 0), stuck: !!x.stuck, ever: [...x.ever].sort() };
        };
        return {
            tofu: await w(all, null),
            fromFirst: await w(all, pinOf(0)),
            missing: await w([all[0], all[2]], pinOf(1)),
            forged: await w([all[0], await entry(L[1], true), all[2]], pinOf(0)),
            forgedTofu: await w([all[0], await entry(L[1], true)], null),
            ids: L.map((v) => v.devices.map((d) => d.id)),
            seqs: L.map((v) => v.seq),
        };
    }, vectors);
    const last = r.seqs[2];
    assert.deepEqual([r.tofu.seq, r.tofu.stuck], [last, false]);
    assert.deepEqual(r.tofu.ever, [...new Set(r.ids.flat())].sort(), 'every device any accepted version named');
    assert.deepEqual([r.fromFirst.seq, r.fromFirst.stuck], [last, false]);
    assert.deepEqual([r.missing.seq, r.missing.stuck], [r.seqs[1], true], 'a chain without the pinned version: the pin stays');
    assert.deepEqual([r.forged.seq, r.forged.stuck], [r.seqs[0], true], 'a forged version: nothing after it is taken');
    assert.deepEqual([r.forgedTofu.seq, r.forgedTofu.stuck], [r.seqs[0], false], 'before a pin, a version that does not stand is skipped');
    assert.ok(!r.forgedTofu.ever.some((id) => !r.ids[0].includes(id)), 'and vouches for nobody');
});

test('the size buckets agree with the C code at every bucket edge up to 1 TiB', async () => {
    const ns = await page.evaluate(async () => {
        const { blobPaddedLen } = await import('/js/crypto/blob.js');
        const ns = [0, 1, 540, 541, 542];
        for (let k = 129; k <= 570; k++) {
            const b = Math.floor(Math.pow(1.05, k));
            ns.push(b - 1, b, b + 1);
        }
        return ns.filter((n) => n <= 2 ** 40).map((n) => [n, blobPaddedLen(n)]);
    });
    const cOut = (await c('padded', ...ns.map(([n]) => String(n)))).out.split('\n').map(Number);
    assert.equal(cOut.length, ns.length);
    const diff = ns.filter(([, js], i) => js !== cOut[i]).map(([n, js]) => `${n}: browser ${js}`);
    assert.deepEqual(diff, []);
    assert.deepEqual(page.problems, []);
});
