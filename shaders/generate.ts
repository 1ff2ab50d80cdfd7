/**
 * Writes core/webgpu/shaders.gen.ts from shaders/*.wgsl.
 * Run: `node_modules/.bin/tsx shaders/generate.ts` or `node_modules/.bin/deno run -A shaders/generate.ts`.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_PATH, renderShaderModule } from './render.ts';

const here = dirname(fileURLToPath(import.meta.url));
const files = new Map<string, string>();
for (const f of readdirSync(here).filter((f) => f.endsWith('.wgsl'))) {
  files.set(f.slice(0, -'.wgsl'.length), readFileSync(join(here, f), 'utf8'));
}
const out = join(here, '..', GENERATED_PATH);
writeFileSync(out, renderShaderModule(files));
console.log(`wrote ${GENERATED_PATH} (${files.size} shaders)`);
