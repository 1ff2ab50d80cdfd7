/**
 * The first layer's filters as a picture: each hidden unit j of rbm0 has one
 * weight per input pixel (column j of W, V = 784 = 28 x 28), drawn as a gray
 * tile, mid-gray at 0, white for the largest positive weight of the tile,
 * black for the most negative. Shared by the donate page and the admin page.
 *
 * Shape legend: V = visible units (pixels), H = hidden units, n = tiles shown.
 */

/** Filters packed tile after tile: n x V. */
export interface FilterTiles {
  readonly n: number;
  /** pixels per tile, side * side */
  readonly V: number;
  readonly side: number;
  readonly data: Float32Array;
}

/** Copies the first n columns of W (V x H, row-major) into n tiles of V values. */
export function extractFilters(W: Float32Array, V: number, H: number, n: number): FilterTiles {
  const side = Math.round(Math.sqrt(V));
  const count = Math.max(0, Math.min(n, H));
  const data = new Float32Array(count * V);
  for (let i = 0; i < V; i++) {
    const row = i * H;
    for (let j = 0; j < count; j++) data[j * V + i] = W[row + j]!;
  }
  return { n: count, V, side: side * side === V ? side : V, data };
}

/**
 * Draws the tiles in a grid of `cols` columns with a 1-pixel gap, each pixel
 * scaled by `scale`. The canvas is resized to fit.
 */
export function drawFilters(canvas: HTMLCanvasElement, tiles: FilterTiles, cols: number, scale = 2): void {
  const { n, V, side, data } = tiles;
  const h = side === V ? 1 : side;
  const w = side === V ? V : side;
  const rows = Math.max(1, Math.ceil(n / cols));
  const gap = 1;
  const W = cols * (w + gap) + gap;
  const H = rows * (h + gap) + gap;
  const img = new ImageData(W, H);
  img.data.fill(255);
  for (let t = 0; t < n; t++) {
    let m = 1e-12;
    for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(data[t * V + i]!));
    const ox = gap + (t % cols) * (w + gap);
    const oy = gap + Math.floor(t / cols) * (h + gap);
    for (let i = 0; i < V; i++) {
      const g = Math.round(127.5 + (127.5 * data[t * V + i]!) / m);
      const p = ((oy + Math.floor(i / w)) * W + ox + (i % w)) * 4;
      img.data[p] = img.data[p + 1] = img.data[p + 2] = g;
    }
  }
  const off = document.createElement('canvas');
  off.width = W;
  off.height = H;
  off.getContext('2d')!.putImageData(img, 0, 0);
  canvas.width = W * scale;
  canvas.height = H * scale;
  const ctx = canvas.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, W * scale, H * scale);
}
