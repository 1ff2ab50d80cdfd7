/**
 * Where things are on the wire: the protocol version, the paths the
 * coordinator serves, the worker's credential header, the MIME types of
 * the binary bodies, and the content address of a blob.
 */

export const PROTOCOL_VERSION = 1;
export const API_PREFIX = '/api/v1';

/** The worker's credential, from RegisterResponse.token, on every worker request. */
export const WORKER_HEADER = 'x-tessera-worker';
/** MIME type of safetensors bodies (results, weights, checkpoints). */
export const SAFETENSORS_TYPE = 'application/vnd.safetensors';
/** MIME type of partition blobs (partition.ts format). */
export const PARTITION_TYPE = 'application/vnd.tessera.partition';

/** Every path the coordinator serves. Functions build paths with parameters. */
export const PATHS = {
  /** GET, public: what the grid is doing (donate page). */
  status: `${API_PREFIX}/status`,
  /** POST RegisterRequest -> RegisterResponse */
  register: `${API_PREFIX}/workers`,
  /** POST HeartbeatRequest -> HeartbeatResponse (worker header) */
  heartbeat: `${API_PREFIX}/workers/heartbeat`,
  /** POST (worker header): the worker leaves; its leases return to the pool. */
  leave: `${API_PREFIX}/workers/leave`,
  /** POST LeaseRequest -> LeaseResponse (worker header); long-polls up to waitMs. */
  lease: `${API_PREFIX}/leases`,
  /** PUT safetensors result -> ResultAck (worker header) */
  result: (leaseId: string): string => `${API_PREFIX}/leases/${leaseId}/result`,
  /** POST (worker header): give a lease back unfinished. */
  returnLease: (leaseId: string): string => `${API_PREFIX}/leases/${leaseId}/return`,
  /** GET: an immutable content-addressed blob (weights or partition). */
  blob: (hash: string): string => `${API_PREFIX}/blobs/${hash}`,
  admin: {
    /** GET list, POST create (JobConfig JSON, partial allowed) */
    jobs: `${API_PREFIX}/admin/jobs`,
    job: (id: string): string => `${API_PREFIX}/admin/jobs/${id}`,
    /** POST start | pause | resume | cancel */
    action: (id: string, action: JobAction): string => `${API_PREFIX}/admin/jobs/${id}/${action}`,
    metrics: (id: string): string => `${API_PREFIX}/admin/jobs/${id}/metrics`,
    /** GET safetensors of the first n filters of the first layer (?n=64) */
    filters: (id: string): string => `${API_PREFIX}/admin/jobs/${id}/filters`,
    /** GET safetensors of the current weights */
    weights: (id: string): string => `${API_PREFIX}/admin/jobs/${id}/weights`,
    /** GET text/event-stream of JobEvent */
    events: `${API_PREFIX}/admin/events`,
    workers: `${API_PREFIX}/admin/workers`,
  },
} as const;

export type JobAction = 'start' | 'pause' | 'resume' | 'cancel';

/**
 * Lowercase hex SHA-256 of a blob: its content address, the hash in
 * PATHS.blob (Web Crypto: Node 20, Deno, browsers).
 */
export async function blobHash(bytes: Uint8Array): Promise<string> {
  // Web Crypto takes ArrayBuffer-backed views only; copy one backed by a SharedArrayBuffer.
  const data = bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : bytes.slice();
  const digest = await crypto.subtle.digest('SHA-256', data);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export const HASH_PATTERN = /^[0-9a-f]{64}$/;
