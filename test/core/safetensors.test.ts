import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, parseSafetensors, SafetensorsError, tensorData } from '../../core/safetensors.ts';

function sample(): Uint8Array {
  return encodeSafetensors(
    [
      ['w', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }],
      ['ids', { shape: [3], data: Uint32Array.from([7, 8, 9]) }],
      ['px', { shape: [5], data: Uint8Array.from([1, 2, 3, 4, 255]) }],
    ],
    { task: 't1', version: '3' },
  );
}

function withHeader(json: string, data = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips tensors, dtypes and metadata, data 8-byte aligned', () => {
    const bytes = sample();
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect((8 + n) % 8).toBe(0);
    const st = decodeSafetensors(bytes);
    expect(st.metadata).toEqual({ task: 't1', version: '3' });
    expect(st.tensors.get('w')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
    expect([...st.tensors.get('w')!.data]).toEqual([1, 2, 3, 4, 5, -6.5]);
    expect([...st.tensors.get('ids')!.data]).toEqual([7, 8, 9]);
    expect(st.tensors.get('px')!.dtype).toBe('U8');
  });

  it('matches the format other implementations write (hand-built header)', () => {
    const data = new Uint8Array(Float32Array.from([0.5, -2]).buffer);
    const st = decodeSafetensors(withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data));
    expect([...st.tensors.get('a')!.data]).toEqual([0.5, -2]);
  });

  it('rejects every kind of corruption with a SafetensorsError naming it', () => {
    const good = sample();
    const cases: [Uint8Array, RegExp][] = [
      [good.subarray(0, 4), /truncated/],
      [good.subarray(0, 40), /truncated/],
      [good.subarray(0, good.length - 1), /outside|truncated/],
      [withHeader('not json'), /JSON/],
      [withHeader('[1,2]'), /not a JSON object/],
      // F16 and I8 are read since the compressed encodings (issue 11); BF16 is still not
      [withHeader('{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}', new Uint8Array(2)), /dtype/],
      [withHeader('{"a":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}', new Uint8Array(4)), /needs 6 bytes/],
      [withHeader('{"a":{"dtype":"I8","shape":[3],"data_offsets":[0,2]}}', new Uint8Array(2)), /needs 3 bytes/],
      [withHeader('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)), /needs 12 bytes/],
      [withHeader('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /shape/],
      [withHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', new Uint8Array(3)), /overlap/],
      [withHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(5)), /after the last tensor/],
      [withHeader('{"__metadata__":{"k":1}}'), /string/],
      [withHeader('{"a":{"dtype":"toString","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), /dtype/],
    ];
    for (const [bytes, msg] of cases) {
      expect(() => decodeSafetensors(bytes, { source: 'upload' })).toThrow(SafetensorsError);
      expect(() => decodeSafetensors(bytes, { source: 'upload' })).toThrow(msg);
    }
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setUint32(0, 0xfffffff0, true);
    expect(() => decodeSafetensors(huge)).toThrow(/limit/);
  });

  it('round-trips F16 bit patterns and I8 values, views where aligned and copies where not', () => {
    const h = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000]);
    const q = Int8Array.from([-127, -1, 0, 1, 127]);
    const bytes = encodeSafetensors([['q', { shape: [5], data: q }], ['h', { shape: [5], data: h }]]);
    const st = decodeSafetensors(bytes);
    expect(st.tensors.get('h')!.dtype).toBe('F16');
    expect(st.tensors.get('h')!.data).toBeInstanceOf(Uint16Array);
    expect([...st.tensors.get('h')!.data]).toEqual([...h]);
    expect(st.tensors.get('q')!.dtype).toBe('I8');
    expect(st.tensors.get('q')!.data).toBeInstanceOf(Int8Array);
    expect([...st.tensors.get('q')!.data]).toEqual([...q]);
    // q's 5 bytes leave h at an odd offset: a view is impossible, the copy is exact
    const spans = parseSafetensors(bytes).spans;
    const hs = spans.find((s) => s.name === 'h')!;
    expect((bytes.byteOffset + hs.begin) % 2).toBe(1);
    expect([...tensorData(bytes, hs, true)]).toEqual([...h]);
  });

  it('refuses to encode a shape that does not match the data', () => {
    expect(() => encodeSafetensors([['x', { shape: [2, 2], data: new Float32Array(3) }]])).toThrow(/holds 4 values/);
  });

  it('parses without copying: views alias the buffer where aligned, copies where not', () => {
    const bytes = sample();
    const { metadata, spans } = parseSafetensors(bytes);
    expect(metadata.task).toBe('t1');
    const w = spans.find((s) => s.name === 'w')!;
    const view = tensorData(bytes, w, true) as Float32Array;
    expect([...view]).toEqual([1, 2, 3, 4, 5, -6.5]);
    expect(view.buffer).toBe(bytes.buffer);
    const copy = tensorData(bytes, w) as Float32Array;
    expect(copy.buffer).not.toBe(bytes.buffer);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const odd = shifted.subarray(1);
    const w2 = parseSafetensors(odd).spans.find((s) => s.name === 'w')!;
    const v2 = tensorData(odd, w2, true) as Float32Array;
    expect(v2.buffer).not.toBe(shifted.buffer); // misaligned: copied
    expect([...v2]).toEqual([1, 2, 3, 4, 5, -6.5]);
  });
});
