/**
 * Renders shaders/*.wgsl as one runtime-neutral TypeScript module of strings
 * (core/webgpu/shaders.gen.ts), so Deno, browsers, Web Workers and Node
 * all load the WGSL the same way, through a plain import. Pure: no file access,
 * so a test can check that the committed module matches the .wgsl files.
 */

/** The generated module's path, relative to the repository root. */
export const GENERATED_PATH = 'core/webgpu/shaders.gen.ts';

/** files: base name without ".wgsl" -> source text. */
export function renderShaderModule(files: ReadonlyMap<string, string>): string {
  const names = [...files.keys()].sort();
  for (const n of names) {
    if (!/^[a-z][a-z0-9_]*$/.test(n)) throw new Error(`shaders/${n}.wgsl: name must be lower-case letters, digits and '_'`);
  }
  const lines = [
    '// Generated from shaders/*.wgsl by shaders/generate.ts: do not edit.',
    '// Regenerate with `node_modules/.bin/tsx shaders/generate.ts` or `deno run -A shaders/generate.ts` (test/webgpu/shaders.deno.test.ts checks it is current).',
    '',
    '/** The files of shaders/, by base name. */',
    `export type ShaderName = ${names.map((n) => `'${n}'`).join(' | ')};`,
    '',
    '/** WGSL source of each file in shaders/. */',
    'export const WGSL: Readonly<Record<ShaderName, string>> = {',
    ...names.map((n) => `  ${n}: ${JSON.stringify(files.get(n)!)},`),
    '};',
    '',
  ];
  return lines.join('\n');
}
