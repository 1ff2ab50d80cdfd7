/**
 * Summation strategies for partial aggregates. `jsSummer` adds with a plain
 * loop; `SimdSummer` keeps every merge target in a WebAssembly memory and
 * adds with f32x4 SIMD (the incoming leaf is first copied in, which is a
 * memcpy), several times the plain loop's throughput. Float32 addition is
 * the same IEEE operation either way, so both give the same bits.
 *
 * Memory: one block per live target (all tensors of a partial, each padded
 * to 4 floats) plus one scratch block, reserved when an iteration's first
 * result shows the layout. A target that finds no free block stays in JS
 * memory and is summed by the loop.
 *
 * Receive slots: with reserve(), the memory also holds slots that request
 * bodies are read into (coordinator/http/routes/workers.ts). A result decoded from a slot has
 * its tensors in this memory already, so adding it needs no copy: the add
 * reads it where it lies.
 */
import { ADD_WASM_BASE64 } from './add-wasm.generated.ts';
import { addGrads } from '../../core/task.ts';
import { AggregationError, type PartialAggregate } from './base.ts';

export interface Summer {
  readonly kind: 'js' | 'simd';
  /** A place to read a request body into, or null (read it into JS memory). */
  acquireSlot?(bytes: number): ReceiveSlot | null;
  /** Sizes its memory for a whole job (SimdSummer.reserve); a summer without one needs none. */
  reserve?(maxBlockFloats: number, maxTargets: number, slots: number, slotBytes: number): void;
  /** An iteration starts: at most maxTargets partials will be merge targets at once. */
  begin(maxTargets: number): void;
  /** Makes p a merge target (SIMD: moves its tensors into the arena). */
  target(p: PartialAggregate): PartialAggregate;
  /** a += b (coverage united, b consumed); returns the gradient bytes summed. */
  merge(a: PartialAggregate, b: PartialAggregate): number;
}

function mergeCounts(a: PartialAggregate, b: PartialAggregate): void {
  for (const t of b.covers) if (a.covers.has(t)) throw new AggregationError(`task ${t} is covered by both partial aggregates`);
  a.loss += b.loss;
  a.correct += b.correct;
  a.count += b.count;
  for (const t of b.covers) a.covers.add(t);
}

function loopAdd(a: PartialAggregate, b: PartialAggregate): number {
  return addGrads(a.grads, b.grads);
}

export const jsSummer: Summer = {
  kind: 'js',
  begin: () => undefined,
  target: (p) => p,
  merge(a, b) {
    for (const t of b.covers) if (a.covers.has(t)) throw new AggregationError(`task ${t} is covered by both partial aggregates`);
    const bytes = loopAdd(a, b);
    mergeCounts(a, b);
    return bytes;
  },
};

/**
 * The add, `add(dst, src, n)`: dst[i] += src[i] for n floats over the
 * imported memory ("env" "memory"), n a multiple of 4, both 16-byte aligned.
 * Built from assembly/add.as.ts by `npm run build:wasm`.
 */
const ADD_MODULE: Uint8Array<ArrayBuffer> = Uint8Array.from(atob(ADD_WASM_BASE64), (ch) => ch.charCodeAt(0));

/** A region of the summer's memory for one request body; `view` is fresh on every call. */
export interface ReceiveSlot {
  readonly size: number;
  write(offset: number, chunk: Uint8Array): void;
  view(length: number): Uint8Array;
  release(): void;
}

interface Layout {
  readonly names: string[];
  /** float offset of each tensor in a block */
  readonly offsets: number[];
  readonly lengths: number[];
  /** floats per block, a multiple of 4 */
  readonly floats: number;
}

export class SimdSummer implements Summer {
  readonly kind = 'simd';
  private readonly memory = new WebAssembly.Memory({ initial: 1 });
  private readonly add: (dst: number, src: number, n: number) => void;
  private layout: Layout | null = null;
  private wanted = 2;
  private free: number[] = [];
  /** byte offset of the block each arena-resident partial owns */
  private owner = new WeakMap<PartialAggregate, number>();
  private scratch = 0;
  /** set by reserve(): receive slots first, then the scratch block and the target blocks */
  private reserved: { slots: number; slotBytes: number; blockBytes: number; blocks: number } | null = null;
  private freeSlots: number[] = [];

  /** null when this runtime has no WebAssembly SIMD. */
  static create(): SimdSummer | null {
    try {
      return WebAssembly.validate(ADD_MODULE) ? new SimdSummer() : null;
    } catch {
      return null;
    }
  }

  private constructor() {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(ADD_MODULE), { env: { memory: this.memory } });
    this.add = inst.exports.add as (dst: number, src: number, n: number) => void;
  }

  /**
   * Sizes the memory once, for a whole job: `slots` receive slots of
   * `slotBytes`, and a scratch block plus `maxTargets` target blocks of up to
   * `maxBlockFloats` floats. Nothing grows afterwards, so views stay valid.
   */
  reserve(maxBlockFloats: number, maxTargets: number, slots: number, slotBytes: number): void {
    const blockBytes = Math.ceil(maxBlockFloats / 4) * 16;
    const slotSize = Math.ceil(slotBytes / 16) * 16;
    const need = slots * slotSize + (maxTargets + 1) * blockBytes;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    this.reserved = { slots, slotBytes: slotSize, blockBytes, blocks: maxTargets + 1 };
    this.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    this.layout = null;
  }

  acquireSlot(bytes: number): ReceiveSlot | null {
    const r = this.reserved;
    if (!r || bytes > r.slotBytes) return null;
    const index = this.freeSlots.pop();
    if (index === undefined) return null;
    const base = index * r.slotBytes;
    let released = false;
    return {
      size: r.slotBytes,
      write: (offset, chunk) => {
        if (offset + chunk.length > r.slotBytes) throw new RangeError(`body over the ${r.slotBytes}-byte slot`);
        new Uint8Array(this.memory.buffer, base + offset, chunk.length).set(chunk);
      },
      view: (length) => new Uint8Array(this.memory.buffer, base, length),
      release: () => {
        if (released) return;
        released = true;
        this.freeSlots.push(index);
      },
    };
  }

  begin(maxTargets: number): void {
    this.wanted = maxTargets + 1; // + the scratch block
    this.layout = null;
    this.owner = new WeakMap();
  }

  private ensure(p: PartialAggregate): Layout {
    const names = [...p.grads.keys()];
    const lengths = names.map((n) => p.grads.get(n)!.length);
    const l = this.layout;
    if (l && l.names.length === names.length && l.names.every((n, i) => n === names[i] && l.lengths[i] === lengths[i])) return l;
    const offsets: number[] = [];
    let floats = 0;
    for (const n of lengths) {
      offsets.push(floats);
      floats += Math.ceil(n / 4) * 4;
    }
    const layout: Layout = { names, offsets, lengths, floats };
    const r = this.reserved;
    if (r && floats * 4 <= r.blockBytes) {
      // Blocks of the reserved size after the receive slots; no growth.
      const first = r.slots * r.slotBytes;
      this.scratch = first;
      this.free = [];
      for (let i = r.blocks - 1; i >= 1; i--) this.free.push(first + i * r.blockBytes);
    } else {
      if (r) this.reserved = null; // larger than planned: give up the slots' guarantee
      const blockBytes = floats * 4;
      const need = blockBytes * this.wanted;
      const have = this.memory.buffer.byteLength;
      if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
      const capacity = Math.floor(this.memory.buffer.byteLength / Math.max(16, blockBytes));
      this.scratch = 0;
      this.free = [];
      for (let i = capacity - 1; i >= 1; i--) this.free.push(i * blockBytes);
    }
    this.layout = layout;
    this.owner = new WeakMap();
    return layout;
  }

  private views(base: number, l: Layout): Map<string, Float32Array> {
    const buf = this.memory.buffer;
    return new Map(l.names.map((n, i) => [n, new Float32Array(buf, base + l.offsets[i]! * 4, l.lengths[i]!)]));
  }

  private copyIn(p: PartialAggregate, base: number, l: Layout): void {
    const f = new Float32Array(this.memory.buffer, base, l.floats);
    for (let i = 0; i < l.names.length; i++) {
      const g = p.grads.get(l.names[i]!)!;
      f.set(g, l.offsets[i]!);
      const pad = l.offsets[i]! + g.length;
      f.fill(0, pad, (i + 1 < l.names.length ? l.offsets[i + 1]! : l.floats));
    }
  }

  target(p: PartialAggregate): PartialAggregate {
    if (this.owner.has(p) || p.grads.size === 0) return p;
    const l = this.ensure(p);
    const base = this.free.pop();
    if (base === undefined) {
      // Arena full: this target sums with the loop, in JS memory (never in a receive slot that will be reused).
      if (![...p.grads.values()].some((g) => g.buffer === this.memory.buffer)) return p;
      return { grads: new Map([...p.grads].map(([n, g]) => [n, g.slice()])), loss: p.loss, correct: p.correct, count: p.count, covers: p.covers };
    }
    this.copyIn(p, base, l);
    const out: PartialAggregate = { grads: this.views(base, l), loss: p.loss, correct: p.correct, count: p.count, covers: p.covers };
    this.owner.set(out, base);
    return out;
  }

  merge(a: PartialAggregate, b: PartialAggregate): number {
    for (const t of b.covers) if (a.covers.has(t)) throw new AggregationError(`task ${t} is covered by both partial aggregates`);
    const dst = this.owner.get(a);
    const l = this.layout;
    const same = l && b.grads.size === l.names.length && l.names.every((n, i) => b.grads.get(n)?.length === l.lengths[i]);
    let bytes: number;
    if (dst === undefined || !l || !same) {
      bytes = loopAdd(a, b);
    } else {
      const src = this.owner.get(b);
      if (src !== undefined) {
        this.add(dst, src, l.floats);
      } else if (l.names.every((n) => b.grads.get(n)!.buffer === this.memory.buffer)) {
        // Read from a receive slot where it lies: tensor by tensor, the last len % 4 values by the loop.
        for (let i = 0; i < l.names.length; i++) {
          const g = b.grads.get(l.names[i]!)!;
          const n4 = g.length & ~3;
          const at = dst + l.offsets[i]! * 4;
          if (n4) this.add(at, g.byteOffset, n4);
          if (n4 < g.length) {
            const acc = new Float32Array(this.memory.buffer, at, g.length);
            for (let j = n4; j < g.length; j++) acc[j] += g[j]!;
          }
        }
      } else {
        this.copyIn(b, this.scratch, l);
        this.add(dst, this.scratch, l.floats);
      }
      bytes = l.lengths.reduce((s, n) => s + n * 4, 0);
    }
    const freed = this.owner.get(b);
    if (freed !== undefined) {
      this.owner.delete(b);
      this.free.push(freed);
    }
    mergeCounts(a, b);
    return bytes;
  }
}

export type SummerKind = 'js' | 'simd' | 'auto';

export function createSummer(kind: SummerKind = 'auto'): Summer {
  if (kind === 'js') return jsSummer;
  const s = SimdSummer.create();
  if (!s && kind === 'simd') throw new AggregationError('WebAssembly SIMD is not available in this runtime');
  return s ?? jsSummer;
}
