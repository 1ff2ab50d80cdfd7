// The aggregation summer's SIMD add (AssemblyScript), over a memory the host
// imports (coordinator/aggregate/simd.ts owns it). Built by
// `npm run build:wasm` into ../add-wasm.generated.ts; the summer's plain
// loop (loopAdd in ../simd.ts) is the reference, and float32 addition is the
// same IEEE operation either way, so both give the same bits.

/**
 * dst[i] += src[i] for n floats; n a multiple of 4, both byte addresses
 * 16-byte aligned. Four vectors per turn while 16 or more floats are left (a
 * third faster than one per turn), then one per turn.
 */
export function add(dst: usize, src: usize, n: i32): void {
  while (n >= 16) {
    v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)));
    v128.store(dst, f32x4.add(v128.load(dst, 16), v128.load(src, 16)), 16);
    v128.store(dst, f32x4.add(v128.load(dst, 32), v128.load(src, 32)), 32);
    v128.store(dst, f32x4.add(v128.load(dst, 48), v128.load(src, 48)), 48);
    dst += 64;
    src += 64;
    n -= 16;
  }
  while (n > 0) {
    v128.store(dst, f32x4.add(v128.load(dst), v128.load(src)));
    dst += 16;
    src += 16;
    n -= 4;
  }
}
