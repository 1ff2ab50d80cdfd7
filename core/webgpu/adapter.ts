/**
 * What a WebGPU adapter is, from its GPUAdapterInfo: for people (the
 * description), for choosing tunables, and for the backend picker (a
 * software adapter runs our kernels slower than the CPU backend).
 */

/** What the adapter is, for people and for choosing tunables. */
export interface AdapterSummary {
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
  /** A CPU emulation (lavapipe/llvmpipe, SwiftShader, WARP) or a fallback adapter. */
  readonly cpuEmulated: boolean;
}

export function summariseAdapter(info: GPUAdapterInfo | undefined): AdapterSummary {
  const description = info?.description ?? '';
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const all = `${description} ${vendor} ${architecture}`.toLowerCase();
  const fallback = (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  return {
    description: description || [vendor, architecture].filter(Boolean).join(' ') || 'unknown adapter',
    vendor,
    architecture,
    cpuEmulated: fallback || /llvmpipe|lavapipe|swiftshader|warp|software/.test(all),
  };
}
