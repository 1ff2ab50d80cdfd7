import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJobConfig } from '../../../core/model/config.ts';
import { initParams } from '../../../core/model/params.ts';
import { encodeSafetensors, SafetensorsError } from '../../../core/safetensors.ts';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint } from '../../../coordinator/engine/checkpoint.ts';

const cfg = parseJobConfig({ layers: [20, 7, 5, 3], seed: 9 });

function sampleCheckpoint() {
  const params = initParams(cfg);
  const velocity = new Map([['rbm1.W', Float32Array.from({ length: 35 }, (_, i) => i / 100)]]);
  return { iteration: 42, params, velocity, config: cfg };
}

describe('checkpoints', () => {
  it('save and load round-trip params, velocities, iteration and config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-ck-'));
    const path = join(dir, 'ck.safetensors');
    const ck = sampleCheckpoint();
    saveCheckpoint(path, ck);
    const back = loadCheckpoint(path, cfg);
    expect(back.iteration).toBe(42);
    expect(back.config).toEqual(cfg);
    for (const [k, v] of ck.params) expect(back.params.get(k)).toEqual(v);
    expect(back.velocity.get('rbm1.W')).toEqual(ck.velocity.get('rbm1.W'));
    expect(back.params.get('rbm0.W')!.some((x) => x !== 0)).toBe(true);
  });

  it('rejects a corrupt, foreign or mismatched file with a clear error', () => {
    const good = encodeCheckpoint(sampleCheckpoint());
    expect(() => decodeCheckpoint(good.subarray(0, good.length - 3), 'ck')).toThrow(SafetensorsError);
    const other = parseJobConfig({ layers: [20, 8, 5, 3], seed: 9 });
    expect(() => decodeCheckpoint(good, 'ck', other)).toThrow(/different job config/);
    const foreign = encodeSafetensors([['x', { shape: [1], data: new Float32Array(1) }]], { format: 'something' });
    expect(() => decodeCheckpoint(foreign, 'ck')).toThrow(/not a Tessera checkpoint/);
    const bad = encodeCheckpoint(sampleCheckpoint());
    // poison one weight with NaN: find rbm0.W's first float after the header
    const n = new DataView(bad.buffer).getUint32(0, true);
    new DataView(bad.buffer).setFloat32(8 + n, Number.NaN, true);
    expect(() => decodeCheckpoint(bad, 'ck')).toThrow(/non-finite/);
  });

  it('an interrupted write leaves the previous checkpoint intact', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-ck-'));
    const path = join(dir, 'ck.safetensors');
    saveCheckpoint(path, sampleCheckpoint());
    const before = readFileSync(path);
    writeFileSync(`${path}.tmp-${process.pid}`, 'half a file'); // a crash after writing the temp file
    expect(readFileSync(path)).toEqual(before);
    saveCheckpoint(path, { ...sampleCheckpoint(), iteration: 43 });
    expect(loadCheckpoint(path).iteration).toBe(43);
  });
});
