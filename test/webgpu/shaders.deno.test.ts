/**
 * The committed core/webgpu/shaders.gen.ts must be what shaders/*.wgsl
 * generate. Fix a failure with: node_modules/.bin/tsx shaders/generate.ts
 */
import { GENERATED_PATH, renderShaderModule } from '../../shaders/render.ts';

const root = new URL('../../', import.meta.url);

Deno.test('shaders.gen.ts matches shaders/*.wgsl', async () => {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(new URL('shaders/', root))) {
    if (e.isFile && e.name.endsWith('.wgsl')) files.set(e.name.slice(0, -5), await Deno.readTextFile(new URL(`shaders/${e.name}`, root)));
  }
  const committed = await Deno.readTextFile(new URL(GENERATED_PATH, root));
  if (committed !== renderShaderModule(files)) {
    throw new Error(`${GENERATED_PATH} is out of date with shaders/*.wgsl: run node_modules/.bin/tsx shaders/generate.ts and commit it`);
  }
});

Deno.test('every kernel file opens with a comment stating bindings and workgroup', async () => {
  for await (const e of Deno.readDir(new URL('shaders/', root))) {
    if (!e.name.endsWith('.wgsl')) continue;
    const src = await Deno.readTextFile(new URL(`shaders/${e.name}`, root));
    if (!src.startsWith('//')) throw new Error(`shaders/${e.name}: must open with a comment`);
    if (src.includes('@compute') && !(/Bindings/.test(src) && /Workgroup/.test(src))) {
      throw new Error(`shaders/${e.name}: the opening comment must describe its Bindings and Workgroup`);
    }
  }
});
