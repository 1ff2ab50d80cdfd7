/**
 * The Hono environment of the coordinator's app: Node's request and response
 * as @hono/node-server binds them (absent under `app.request()` in tests,
 * hence Partial), and what middleware learn for the handlers after them.
 */
import type { HttpBindings } from '@hono/node-server';
import type { WorkerRef } from '../engine/coordinator.ts';

export type Env = {
  Bindings: Partial<HttpBindings>;
  Variables: {
    /** the authenticated worker (workerAuth) */
    worker: WorkerRef;
  };
};
