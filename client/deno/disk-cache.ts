/**
 * The Deno worker's partition cache: blobs on disk as DIR/<sha256>, written
 * to a temporary name and renamed, so a crash never leaves half a blob under
 * its hash (the worker also checks every blob's hash when it reads it).
 */
import type { BlobCache } from '../worker/worker.ts';

export class DiskBlobCache implements BlobCache {
  private known: Set<string> | null = null;

  constructor(private readonly dir: string) {}

  private async index(): Promise<Set<string>> {
    if (this.known) return this.known;
    await Deno.mkdir(this.dir, { recursive: true });
    const known = new Set<string>();
    for await (const e of Deno.readDir(this.dir)) if (e.isFile && /^[0-9a-f]{64}$/.test(e.name)) known.add(e.name);
    this.known = known;
    return known;
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    if (!(await this.index()).has(hash)) return undefined;
    try {
      return await Deno.readFile(`${this.dir}/${hash}`);
    } catch {
      this.known!.delete(hash);
      return undefined;
    }
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    const known = await this.index();
    if (known.has(hash)) return;
    const tmp = `${this.dir}/.${hash}.${Deno.pid}.tmp`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, `${this.dir}/${hash}`);
    known.add(hash);
  }

  async delete(hash: string): Promise<void> {
    (await this.index()).delete(hash);
    await Deno.remove(`${this.dir}/${hash}`).catch(() => undefined);
  }

  async partitions(): Promise<string[]> {
    return [...(await this.index())];
  }
}

