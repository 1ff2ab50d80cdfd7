/**
 * A small typed wrapper over a WebGPU device: pipelines built once and cached
 * by kernel name + constants, every GPU object labelled with the kernel it
 * serves, validation errors turned into exceptions that name the kernel, and
 * a lost device reported clearly. Runtime-neutral: it needs `navigator.gpu`
 * (Deno, browsers, Web Workers) or a GPUDevice handed in (Node's `webgpu`).
 */
import { summariseAdapter as summarise, type AdapterSummary } from './adapter.ts';
import { WGSL, type ShaderName } from './shaders.gen.ts';

export type { AdapterSummary };

/** One kernel build: a shader, the libraries it calls, and its constants. */
export interface KernelSpec {
  /** A file of shaders/ (without ".wgsl") holding the entry point `main`. */
  readonly shader: ShaderName;
  /** Library files prepended to the source (e.g. "rng"). */
  readonly libs?: readonly ShaderName[];
  /** `override` constants, passed as the pipeline's `constants`. */
  readonly overrides?: Readonly<Record<string, number | boolean>>;
  /**
   * `const NAME: u32 = ...;` declarations rewritten in the source: for the few
   * tunables WGSL requires to be const (sizes of function-scope arrays).
   */
  readonly consts?: Readonly<Record<string, number>>;
}

export class GpuError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GpuError';
  }
}

/** The cache key and label of a kernel build, e.g. "matmul{FORM=1,EPI=0}[TM=4,TN=4]". */
export function kernelKey(spec: KernelSpec): string {
  const ov = Object.entries(spec.overrides ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const cs = Object.entries(spec.consts ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return (
    spec.shader +
    (ov.length ? `{${ov.map(([k, v]) => `${k}=${Number(v)}`).join(',')}}` : '') +
    (cs.length ? `[${cs.map(([k, v]) => `${k}=${v}`).join(',')}]` : '')
  );
}

/** The WGSL a spec compiles: libraries first, then the kernel with its consts rewritten. */
export function kernelSource(spec: KernelSpec): string {
  let code = WGSL[spec.shader];
  for (const [name, value] of Object.entries(spec.consts ?? {})) {
    if (!Number.isInteger(value) || value < 0) throw new GpuError(`kernel ${spec.shader}: const ${name} must be a non-negative integer, got ${value}`);
    const re = new RegExp(`^const ${name}: u32 = [^;]+;`, 'm');
    if (!re.test(code)) throw new GpuError(`kernel ${spec.shader}: no "const ${name}: u32 = ...;" line to specialise`);
    code = code.replace(re, `const ${name}: u32 = ${value}u;`);
  }
  return [...(spec.libs ?? []).map((l) => WGSL[l]), unroll(code, spec.consts ?? {})].join('\n');
}

/**
 * Unrolls every `for (var i = 0u; i < BOUND; i++) { // unroll` loop whose BOUND
 * is a literal (`4u`) or a specialised const (or that const / 4, written NAME4), replacing `i` in
 * the body by literals. Drivers do not reliably unroll the loops naga emits,
 * and an array indexed by a loop variable is spilled to slow local memory.
 */
export function unroll(code: string, consts: Readonly<Record<string, number>>): string {
  const head = /for \(var (\w+) = 0u; \1 < (\w+); \1\+\+\) \{ \/\/ unroll\n/;
  const bounds: Record<string, number> = {};
  for (const [k, v] of Object.entries(consts)) {
    bounds[k] = v;
    if (v % 4 === 0) bounds[`${k}4`] = v / 4;
  }
  for (let m = head.exec(code); m; m = head.exec(code)) {
    const [whole, name, bound] = m as unknown as [string, string, string];
    const n = /^\d+u$/.test(bound) ? parseInt(bound, 10) : bounds[bound];
    if (n === undefined) throw new GpuError(`unroll: loop bound ${bound} is not a specialised const (have ${Object.keys(bounds).join(', ')})`);
    const open = m.index + whole.length;
    let depth = 1;
    let end = open;
    while (depth > 0) {
      const c = code[end++];
      if (c === undefined) throw new GpuError(`unroll: no closing brace for the loop over ${name}`);
      if (c === '{') depth++;
      else if (c === '}') depth--;
    }
    const body = code.slice(open, end - 1);
    const re = new RegExp(`\\b${name}\\b`, 'g');
    const copies = Array.from({ length: n }, (_, k) => `{${body.replace(re, `${k}u`)}}`).join('\n');
    code = code.slice(0, m.index) + copies + code.slice(end);
  }
  return code;
}

export interface GpuOptions {
  /** Use this device (e.g. from Node's `webgpu` package) instead of asking navigator.gpu. */
  readonly device?: GPUDevice;
  /** Use this adapter (its device is requested with the adapter's buffer-size limits). */
  readonly adapter?: GPUAdapter;
  readonly powerPreference?: GPUPowerPreference;
}

export class Gpu {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private lostMessage: string | null = null;
  private destroyed = false;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
  ) {
    device.lost.then((info) => {
      if (!this.destroyed) this.lostMessage = `WebGPU device lost (${info.reason}): ${info.message || 'no message'}`;
    });
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      console.error(`tessera webgpu: uncaptured ${e.constructor.name}: ${e.message}`);
    });
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    if (opts.device) return new Gpu(opts.device, summarise(opts.device.adapterInfo));
    let adapter = opts.adapter ?? null;
    if (!adapter) {
      const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
      if (!gpu) {
        throw new GpuError(
          'WebGPU is not available here (no navigator.gpu): use Deno, a browser with WebGPU enabled, ' +
            "or pass a device (e.g. from Node's `webgpu` package); or use the cpu backend",
        );
      }
      adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
      if (!adapter) throw new GpuError('navigator.gpu.requestAdapter() returned no adapter: no usable GPU or driver (on Linux, is a Vulkan driver installed?)');
    }
    const device = await adapter.requestDevice({
      label: 'tessera',
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBuffersPerShaderStage: Math.min(8, adapter.limits.maxStorageBuffersPerShaderStage),
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: adapter.limits.maxComputeWorkgroupSizeY,
      },
    });
    return new Gpu(device, summarise(adapter.info));
  }

  /** Throws if the device was lost or destroyed; call before using it. */
  check(): void {
    if (this.lostMessage) throw new GpuError(`${this.lostMessage}; create a new backend to continue`);
    if (this.destroyed) throw new GpuError('the webgpu backend was disposed');
  }

  /** The compute pipeline of a spec, built on first use (validation errors become GpuError naming the kernel). */
  pipeline(spec: KernelSpec): Promise<GPUComputePipeline> {
    const key = kernelKey(spec);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.build(key, spec);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private async build(key: string, spec: KernelSpec): Promise<GPUComputePipeline> {
    this.check();
    const code = kernelSource(spec);
    const d = this.device;
    d.pushErrorScope('validation');
    const module = d.createShaderModule({ label: key, code });
    let pipeline: GPUComputePipeline | null = null;
    let failure: unknown = null;
    try {
      pipeline = await d.createComputePipelineAsync({
        label: key,
        layout: 'auto',
        compute: { module, entryPoint: 'main', constants: numeric(spec.overrides) },
      });
    } catch (e) {
      failure = e;
    }
    const err = await d.popErrorScope();
    if (err || failure || !pipeline) {
      let detail = err?.message ?? (failure as Error | null)?.message ?? 'no pipeline';
      try {
        const info = await module.getCompilationInfo();
        const msgs = info.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
        if (msgs.length) detail += `\n${msgs.join('\n')}`;
      } catch {
        // compilation info is optional in some runtimes
      }
      throw new GpuError(`kernel ${key}: pipeline creation failed: ${detail}`, { cause: failure ?? err });
    }
    return pipeline;
  }

  /** A storage buffer holding `data` (at least 16 bytes). */
  upload(label: string, data: Float32Array | Uint32Array): GPUBuffer {
    this.check();
    const buf = this.device.createBuffer({
      label,
      size: Math.max(16, align4(data.byteLength)),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    const view = data instanceof Float32Array ? new Float32Array(buf.getMappedRange()) : new Uint32Array(buf.getMappedRange());
    view.set(data);
    buf.unmap();
    return buf;
  }

  /** Overwrites a buffer from `upload` with new data of the same length. */
  rewrite(buf: GPUBuffer, data: Float32Array | Uint32Array): void {
    this.check();
    this.device.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  }

  /** A storage buffer of `floats` f32 values; filled with NaN when `poison`, so an unwritten element shows. */
  scratch(label: string, floats: number, poison = false): GPUBuffer {
    this.check();
    const buf = this.device.createBuffer({
      label,
      size: Math.max(16, floats * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      mappedAtCreation: poison,
    });
    if (poison) {
      new Float32Array(buf.getMappedRange()).fill(NaN);
      buf.unmap();
    }
    return buf;
  }

  /** Starts recording a batch of kernels that runs with one submit and one readback. */
  record(label: string): Recording {
    this.check();
    return new Recording(this, label);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pipelines.clear();
    this.device.destroy();
  }
}

/** One dispatch: kernel, bindings in the shader's order (uniforms last), workgroup counts. */
interface Dispatch {
  readonly spec: KernelSpec;
  readonly buffers: readonly GPUBuffer[];
  readonly uniforms: ArrayBuffer;
  readonly groups: readonly [number, number, number];
}

/** Kernels recorded for one task: encoded into one compute pass, submitted once, read back once. */
export class Recording {
  private readonly dispatches: Dispatch[] = [];
  private readonly transient: GPUBuffer[] = [];

  constructor(
    private readonly gpu: Gpu,
    readonly label: string,
  ) {}

  /** Remembers a buffer to destroy when the recording finishes. */
  own(buf: GPUBuffer): GPUBuffer {
    this.transient.push(buf);
    return buf;
  }

  /** Queues a dispatch; `buffers` are the storage bindings 0..n-1, the uniform block is binding n. */
  dispatch(spec: KernelSpec, buffers: readonly GPUBuffer[], uniforms: ArrayBuffer, groups: readonly [number, number, number]): void {
    const limit = this.gpu.device.limits.maxComputeWorkgroupsPerDimension;
    if (groups.some((g) => g > limit)) throw new GpuError(`kernel ${kernelKey(spec)}: ${groups.join('x')} workgroups exceed the device's ${limit} per dimension`);
    if (groups.some((g) => g === 0)) return;
    this.dispatches.push({ spec, buffers, uniforms, groups });
  }

  /**
   * Builds missing pipelines, encodes every dispatch into one pass, copies the
   * `outputs` (buffer, f32 count) into one staging buffer, submits, maps it once
   * and returns one Float32Array per output. Destroys the transient buffers.
   */
  async finish(outputs: readonly (readonly [GPUBuffer, number])[]): Promise<Float32Array[]> {
    const gpu = this.gpu;
    const d = gpu.device;
    try {
      const pipelines = await Promise.all(this.dispatches.map((x) => gpu.pipeline(x.spec)));
      gpu.check();
      d.pushErrorScope('out-of-memory');
      d.pushErrorScope('validation');
      const enc = d.createCommandEncoder({ label: this.label });
      const pass = enc.beginComputePass({ label: this.label });
      this.dispatches.forEach((x, i) => {
        const key = kernelKey(x.spec);
        const pipeline = pipelines[i]!;
        const ub = this.own(d.createBuffer({ label: `${key}/uniforms`, size: align16(x.uniforms.byteLength), usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true }));
        new Uint8Array(ub.getMappedRange()).set(new Uint8Array(x.uniforms));
        ub.unmap();
        const entries: GPUBindGroupEntry[] = [...x.buffers, ub].map((buffer, binding) => ({ binding, resource: { buffer } }));
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, d.createBindGroup({ label: key, layout: pipeline.getBindGroupLayout(0), entries }));
        pass.dispatchWorkgroups(x.groups[0], x.groups[1], x.groups[2]);
      });
      pass.end();
      const total = outputs.reduce((s, [, n]) => s + n, 0);
      const staging = this.own(d.createBuffer({ label: `${this.label}/readback`, size: Math.max(16, total * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
      let at = 0;
      for (const [buf, n] of outputs) {
        if (n > 0) enc.copyBufferToBuffer(buf, 0, staging, at * 4, n * 4);
        at += n;
      }
      d.queue.submit([enc.finish()]);
      const validation = await d.popErrorScope();
      const oom = await d.popErrorScope();
      if (validation || oom) {
        throw new GpuError(`${this.label}: ${(validation ?? oom)!.message} (kernels: ${[...new Set(this.dispatches.map((x) => kernelKey(x.spec)))].join(', ')})`);
      }
      if (total === 0) return outputs.map(() => new Float32Array(0));
      await staging.mapAsync(GPUMapMode.READ).catch((e: unknown) => {
        gpu.check();
        throw new GpuError(`${this.label}: reading results back failed: ${(e as Error).message}`, { cause: e });
      });
      const all = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      at = 0;
      return outputs.map(([, n]) => {
        const part = all.slice(at, at + n);
        at += n;
        return part;
      });
    } finally {
      for (const b of this.transient) b.destroy();
    }
  }
}

function numeric(o: Readonly<Record<string, number | boolean>> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o ?? {})) out[k] = Number(v);
  return out;
}

const align4 = (n: number): number => Math.ceil(n / 4) * 4;
const align16 = (n: number): number => Math.max(16, Math.ceil(n / 16) * 16);
