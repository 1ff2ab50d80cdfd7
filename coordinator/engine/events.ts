/** A tiny publish/subscribe bus for JobEvent (the admin page's SSE stream). */
import type { JobEvent } from '../../core/protocol/index.ts';

export type Listener = (e: JobEvent) => void;

export class EventBus {
  private readonly listeners = new Set<Listener>();

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(e: JobEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // a broken subscriber must not break training
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
