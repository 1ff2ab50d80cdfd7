import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dequantize, encodedBytes, encodedEntries, EncodingError, readEncoded, roundTrip, SCALE_SUFFIX } from '../../core/protocol/encoded-tensors.ts';
import { parseJobConfig } from '../../core/model/config.ts';
import { initParams, tensorShapes } from '../../core/model/params.ts';
import { decodeWeights } from '../../core/protocol/index.ts';
import { encodeSafetensors, parseSafetensors, type TensorData } from '../../core/safetensors.ts';
import { applyWeightsDelta, parseDeltaMeta, WeightsChain, type HeldWeights } from '../../core/protocol/weights-delta.ts';

function randomTensor(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (next() * 2 - 1) * scale;
  return x;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const shapes = new Map<string, number[]>([['a.W', [37, 29]], ['a.b', [29]]]);
const tensors = new Map([['a.W', randomTensor(37 * 29, 1, 0.03)], ['a.b', randomTensor(29, 2, 5)]]);
const seed = { seed: 9, stream: 4 };

function body(entries: [string, { shape: readonly number[]; data: TensorData }][]): { bytes: Uint8Array; spans: ReturnType<typeof parseSafetensors>['spans'] } {
  const bytes = encodeSafetensors(entries);
  return { bytes, spans: parseSafetensors(bytes).spans };
}

describe('encoded tensors in safetensors', () => {
  for (const enc of ['f32', 'f16', 'int8'] as const) {
    it(`${enc}: round-trips within its bound, ${enc === 'f32' ? 'exactly' : 'deterministically'}, at the stated size`, () => {
      const entries = encodedEntries(tensors, shapes, enc, 64, seed);
      const { bytes, spans } = body(entries);
      const got = readEncoded(bytes, spans, shapes, enc, 64);
      let dataBytes = 0;
      for (const [name, x] of tensors) {
        const y = dequantize(got.get(name)!);
        dataBytes += encodedBytes(x.length, enc, 64);
        let maxAbs = 0;
        for (let i = 0; i < x.length; i++) maxAbs = Math.max(maxAbs, Math.abs(x[i]!));
        for (let i = 0; i < x.length; i++) {
          const err = Math.abs(y[i]! - x[i]!);
          if (enc === 'f32') expect(err).toBe(0);
          else if (enc === 'f16') expect(err).toBeLessThanOrEqual(Math.max(Math.abs(x[i]!) * 2 ** -11, 2 ** -25));
          else expect(err).toBeLessThan(maxAbs / 127 + 1e-9); // below one step of the tensor's largest block scale
        }
      }
      expect(spans.reduce((n, s) => n + s.end - s.begin, 0)).toBe(dataBytes);
      const again = roundTrip(tensors, shapes, enc, 64, seed);
      expect(again.bytes).toBe(dataBytes);
      for (const [name, y] of again.values) expect([...y]).toEqual([...dequantize(got.get(name)!)]);
    });
  }

  it('int8 draws differ between tensors and seeds, and are unbiased on average over seeds', () => {
    const x = new Map([['a.b', Float32Array.from({ length: 29 }, (_, i) => (i - 14) * 0.0137)]]);
    const sh = new Map([['a.b', [29]]]);
    const mean = new Float64Array(29);
    const draws = 2000;
    for (let s = 0; s < draws; s++) {
      const y = roundTrip(x, sh, 'int8', 8, { seed: 3, stream: s }).values.get('a.b')!;
      for (let i = 0; i < 29; i++) mean[i]! += y[i]! / draws;
    }
    const step = (14 * 0.0137) / 127;
    for (let i = 0; i < 29; i++) expect(Math.abs(mean[i]! - x.get('a.b')![i]!)).toBeLessThan(4 * step / Math.sqrt(draws));
    const a = roundTrip(x, sh, 'int8', 8, { seed: 3, stream: 0 }).values.get('a.b')!;
    const b = roundTrip(x, sh, 'int8', 8, { seed: 4, stream: 0 }).values.get('a.b')!;
    expect([...a]).not.toEqual([...b]);
  });

  it('refuses every bad body with its code, naming the problem', () => {
    const good = encodedEntries(tensors, shapes, 'int8', 64, seed);
    const replace = (name: string, data: TensorData, shape?: number[]) =>
      good.map(([n, t]): [string, { shape: readonly number[]; data: TensorData }] => (n === name ? [n, { shape: shape ?? [data.length], data }] : [n, t]));
    const nb = Math.ceil((37 * 29) / 64);
    const nanScale = new Float32Array(nb).fill(0.01); nanScale[3] = NaN;
    const zeroScale = new Float32Array(nb).fill(0.01); zeroScale[5] = 0;
    const negScale = new Float32Array(nb).fill(0.01); negScale[0] = -1;
    const minus128 = new Int8Array(37 * 29); minus128[100] = -128;
    const cases: [ReturnType<typeof body>, string, RegExp, 'int8' | 'f16' | 'f32'][] = [
      [body(replace(`a.W${SCALE_SUFFIX}`, new Float32Array(nb - 1))), 'shape-mismatch', /need F32\[17\]/, 'int8'],
      [body(replace(`a.W${SCALE_SUFFIX}`, nanScale)), 'non-finite', /block 3/, 'int8'],
      [body(replace(`a.W${SCALE_SUFFIX}`, zeroScale)), 'bad-scale', /block 5.*not positive/, 'int8'],
      [body(replace(`a.W${SCALE_SUFFIX}`, negScale)), 'bad-scale', /block 0/, 'int8'],
      [body(replace('a.W', minus128, [37, 29])), 'bad-scale', /-128 at index 100/, 'int8'],
      [body(good.filter(([n]) => n !== `a.b${SCALE_SUFFIX}`)), 'shape-mismatch', /lacks its scales/, 'int8'],
      [body(good.filter(([n]) => n !== 'a.b')), 'shape-mismatch', /lacks tensor "a.b" \(I8\[29\]\)/, 'int8'],
      [body([...good, ['extra', { shape: [1], data: new Float32Array(1) }]]), 'shape-mismatch', /unexpected tensor "extra"/, 'int8'],
      [body(replace('a.W', new Int8Array(37 * 29), [29, 37])), 'shape-mismatch', /expected I8\[37,29\]/, 'int8'],
      [body(encodedEntries(tensors, shapes, 'f16', 64, seed)), 'wrong-encoding', /encoding int8 sends I8/, 'int8'],
      [body(encodedEntries(tensors, shapes, 'f32', 64, seed)), 'wrong-encoding', /is F32/, 'f16'],
      [body([['a.W', { shape: [37, 29], data: new Uint16Array(37 * 29).fill(0x7c00) }], ['a.b', { shape: [29], data: new Uint16Array(29) }]]), 'non-finite', /float16 infinity or NaN at index 0/, 'f16'],
      [body([['a.W', { shape: [37, 29], data: new Uint32Array(37 * 29) }], ['a.b', { shape: [29], data: new Float32Array(29) }]]), 'shape-mismatch', /U32/, 'f32'],
    ];
    for (const [{ bytes, spans }, code, msg, enc] of cases) {
      let err: unknown;
      try {
        readEncoded(bytes, spans, shapes, enc, 64);
      } catch (e) {
        err = e;
      }
      expect(err, `${code} ${msg}`).toBeInstanceOf(EncodingError);
      expect((err as EncodingError).code).toBe(code);
      expect((err as Error).message).toMatch(msg);
    }
  });
});

describe('delta broadcast chain', () => {
  const cfg = parseJobConfig({ layers: [784, 30, 20, 10], seed: 5 });
  const sh = tensorShapes(cfg);

  for (const enc of ['f32', 'f16', 'int8'] as const) {
    it(`${enc}: a worker applying every delta holds the coordinator's weights bit for bit at every version; only changed tensors travel; error never accumulates`, async () => {
      const master = initParams(cfg);
      const { chain, first } = WeightsChain.start(cfg, sh, 'job1', enc, 128, sha256, master, 0);
      const whole = decodeWeights(first.blob, sh);
      let held: HeldWeights = { version: 0, hash: first.hash, params: new Map([...whole.params].map(([k, v]) => [k, v.slice()])) };
      const trained = ['rbm0.W', 'rbm0.vbias', 'rbm0.hbias'];
      let maxErr = 0;
      for (let v = 1; v <= 12; v++) {
        // the optimizer moves the master weights of the phase's tensors
        for (const n of trained) {
          const m = master.get(n)!;
          const d = randomTensor(m.length, 100 + v, 0.01);
          for (let i = 0; i < m.length; i++) m[i] = m[i]! + d[i]!;
        }
        const pub = chain.next(master, trained, v, v === 12);
        const { meta, spans } = parseDeltaMeta(pub.delta!);
        expect(meta).toMatchObject({ from: v - 1, version: v, hash: pub.hash, encoding: enc });
        // frozen tensors are not sent
        expect(new Set(spans.map((s) => s.name.replace(SCALE_SUFFIX, '')))).toEqual(new Set(trained));
        const payload = trained.reduce((n, t) => n + encodedBytes(master.get(t)!.length, enc, 128), 0);
        expect(pub.delta!.length).toBeGreaterThanOrEqual(payload);
        expect(pub.delta!.length).toBeLessThan(payload + 1024); // the header: no frozen tensor rides along
        const r = await applyWeightsDelta(cfg, sh, held, pub.delta!);
        held = r.held;
        expect(held.hash).toBe(pub.hash);
        for (const [n, p] of chain.published) expect(Buffer.from(held.params.get(n)!.buffer).equals(Buffer.from(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength)))).toBe(true);
        // error never accumulates: P is within one quantum of M, whatever the version
        for (const n of trained) {
          const m = master.get(n)!;
          const p = chain.published.get(n)!;
          for (let i = 0; i < m.length; i++) maxErr = Math.max(maxErr, Math.abs(m[i]! - p[i]!));
        }
      }
      // after the snap (phase end) M = P for the frozen tensors
      for (const n of trained) expect([...master.get(n)!]).toEqual([...chain.published.get(n)!]);
      if (enc === 'f32') expect(maxErr).toBe(0);
      else expect(maxErr).toBeLessThan(enc === 'f16' ? 1e-4 : 1e-3);
    });
  }

  it('a delta against another version, or one whose result does not hash right, is refused', async () => {
    const master = initParams(cfg);
    const { chain, first } = WeightsChain.start(cfg, sh, 'job1', 'int8', 128, sha256, master, 0);
    const copy = (): HeldWeights => ({ version: 0, hash: first.hash, params: new Map([...decodeWeights(first.blob, sh).params].map(([k, v]) => [k, v.slice()])) });
    master.get('out.b')![0] = 0.5;
    const d1 = (chain.next(master, ['out.b'], 1, false)).delta!;
    master.get('out.b')![1] = 0.25;
    const d2 = (chain.next(master, ['out.b'], 2, false)).delta!;
    await expect(applyWeightsDelta(cfg, sh, copy(), d2)).rejects.toThrow(/goes from version 1.*holds 0/);
    await expect(applyWeightsDelta(cfg, sh, { ...copy(), hash: 'f'.repeat(64) }, d1)).rejects.toThrow(/holds 0/);
    const damaged = copy();
    damaged.params.get('rbm1.W')![3] = 1;
    await expect(applyWeightsDelta(cfg, sh, damaged, d1)).rejects.toThrow(/hashes to/);
    await expect(applyWeightsDelta(cfg, sh, copy(), d1.subarray(0, d1.length - 3))).rejects.toThrow(/truncated|outside|after/);
    expect((await applyWeightsDelta(cfg, sh, copy(), d1)).changed).toEqual(['out.b']);
  });
});
