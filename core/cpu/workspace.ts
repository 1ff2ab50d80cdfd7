/**
 * Scratch memory for one backend call, reused across calls: every call asks
 * for all its buffers at once, the backing store grows (once) when it is too
 * small, and the views handed out are valid until the next reserve().
 * A backend never allocates big buffers per call beyond its results.
 */

/** Floats per alignment unit: every view starts on a 16-byte boundary (one f32x4). */
const ALIGN = 4;
/** Bytes kept readable after a WasmWorkspace's last buffer (assembly/simd.as.ts reads up to 12 past B). */
const SLACK = 64;

export interface Workspace {
  /** Views of the given lengths, 16-byte aligned, not cleared; valid until the next reserve(). */
  reserve(lengths: readonly number[]): Float32Array[];
}

function layout(lengths: readonly number[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const n of lengths) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`workspace buffer of ${n} floats`);
    offsets.push(total);
    total += Math.ceil(n / ALIGN) * ALIGN;
  }
  return { offsets, total };
}

/** A workspace in a plain Float32Array (the JS kernels' memory). */
export class ArrayWorkspace implements Workspace {
  private store = new Float32Array(0);

  reserve(lengths: readonly number[]): Float32Array[] {
    const { offsets, total } = layout(lengths);
    if (this.store.length < total) this.store = new Float32Array(total);
    return lengths.map((n, i) => this.store.subarray(offsets[i]!, offsets[i]! + n));
  }
}

/**
 * A workspace in a WebAssembly memory, from byte offset `base` on (above the
 * module's own data), so the views can be passed to its kernels by address.
 */
export class WasmWorkspace implements Workspace {
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly base: number,
  ) {
    if (base % 16 !== 0) throw new RangeError(`workspace base ${base} is not 16-byte aligned`);
  }

  reserve(lengths: readonly number[]): Float32Array[] {
    const { offsets, total } = layout(lengths);
    // SLACK: the SIMD kernels may read (never write) a few bytes past the last buffer.
    const need = this.base + total * 4 + SLACK;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    const buf = this.memory.buffer;
    return lengths.map((n, i) => new Float32Array(buf, this.base + offsets[i]! * 4, n));
  }
}
