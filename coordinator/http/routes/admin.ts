/**
 * Admin routes (behind adminAuth): jobs and their actions, metrics, weights,
 * workers, and the server-sent event stream the admin page follows.
 */
import type { Hono, MiddlewareHandler } from 'hono';
import { streamSSE } from 'hono/streaming';
import { parseJobConfig } from '../../../core/model/config.ts';
import { PATHS, SAFETENSORS_TYPE } from '../../../core/protocol/index.ts';
import { CreateJobBody, JobActionParam, parseWith } from '../../../core/schemas.ts';
import type { Coordinator } from '../../engine/coordinator.ts';
import { readJson } from '../body.ts';
import type { Env } from '../env.ts';

export function adminRoutes(app: Hono<Env>, coord: Coordinator, smallBody: MiddlewareHandler): void {
  app.get(PATHS.admin.jobs, (c) => c.json({ jobs: coord.jobs() }));
  app.post(PATHS.admin.jobs, smallBody, async (c) => {
    const body = await readJson(c, CreateJobBody);
    parseJobConfig(body); // a ConfigError (400) lists the issues by field
    return c.json(await coord.createJob(body), 201);
  });
  app.get(`${PATHS.admin.jobs}/:id`, (c) => c.json(coord.summary(c.req.param('id'))));
  app.post(`${PATHS.admin.jobs}/:id/:action{start|pause|resume|cancel}`, async (c) =>
    c.json(await coord.action(c.req.param('id'), parseWith(JobActionParam, c.req.param('action'), 'invalid job action'))),
  );
  app.get(`${PATHS.admin.jobs}/:id/metrics`, (c) => {
    const since = Number(c.req.query('since') ?? 0);
    return c.json(coord.metrics(c.req.param('id'), Number.isSafeInteger(since) && since >= 0 ? since : 0));
  });
  app.get(`${PATHS.admin.jobs}/:id/weights`, (c) => {
    const id = c.req.param('id');
    const bytes = coord.weightsOf(id);
    c.header('Content-Type', SAFETENSORS_TYPE);
    c.header('Content-Disposition', `attachment; filename="${id}-weights.safetensors"`);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200);
  });
  app.get(PATHS.admin.workers, (c) => c.json({ workers: coord.workers() }));
  app.get(PATHS.admin.events, (c) =>
    streamSSE(c, async (stream) => {
      let id = 0;
      const queue: string[] = [];
      let wake: (() => void) | null = null;
      const off = coord.events.subscribe((e) => {
        queue.push(JSON.stringify(e));
        if (queue.length > 10_000) queue.shift();
        wake?.();
      });
      stream.onAbort(() => {
        off();
        wake?.();
      });
      await stream.writeSSE({ event: 'hello', data: JSON.stringify(coord.publicStatus()), id: String(id++) });
      while (!stream.aborted && !stream.closed) {
        while (queue.length) {
          const data = queue.shift()!;
          const type = (JSON.parse(data) as { type: string }).type;
          await stream.writeSSE({ event: type, data, id: String(id++) });
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 15_000);
        });
        wake = null;
        if (!queue.length && !stream.aborted) await stream.write(': keep-alive\n\n');
      }
      off();
    }),
  );
}
