/**
 * Peer-to-peer aggregation trees, as pure functions: the shape of a tree of
 * fan-in F over the tabs that take part, the leases each node may claim,
 * and the check of a partial sum a node uploads (its coverage claim, its
 * scalars and its count-sketch, core/protocol/sketch.ts).
 *
 * Node i of a tree of n tabs has the children F i + 1 .. F i + F (a heap).
 * A leaf computes its leases and hands the result to its parent; a node with
 * children adds their partials and hands the sum up, and the root (or any
 * node whose parent does not answer) uploads it. A node that forwards sums
 * uploads its own result directly, not inside the sum it forwards: the
 * partial is checked with a sketch seed that only leaves know, and a node
 * that had to sketch its own result with that seed could aim a forgery at
 * the sketch's null space. So only results of strict descendants are in a
 * node's partial, and no node that adds sums ever holds the check seed.
 */
import { compareSketch, sketchTensors, type Sketch, type SketchReport } from '../../core/protocol/sketch.ts';
import type { ErrorCode } from '../../core/protocol/index.ts';
import type { LeaseInfo } from './intake.ts';

export interface TreeNode {
  /** the tab's worker id, also its peer id on the signalling server */
  readonly peer: string;
  readonly parent: number | null;
  readonly children: readonly number[];
}

/** The heap-shaped tree of fan-in `fanIn` over `peers` (root first). */
export function planTree(peers: readonly string[], fanIn: number): TreeNode[] {
  if (!Number.isInteger(fanIn) || fanIn < 1 || fanIn > 64) throw new RangeError(`fan-in must be an integer in [1, 64], got ${fanIn}`);
  if (new Set(peers).size !== peers.length) throw new RangeError('planTree: a peer appears twice');
  return peers.map((peer, i) => {
    const children: number[] = [];
    for (let c = fanIn * i + 1; c <= fanIn * i + fanIn && c < peers.length; c++) children.push(c);
    return { peer, parent: i === 0 ? null : Math.floor((i - 1) / fanIn), children };
  });
}

/** Worker ids of the strict descendants of node `index`. */
export function descendants(nodes: readonly TreeNode[], index: number): Set<string> {
  const out = new Set<string>();
  const stack = [...(nodes[index]?.children ?? [])];
  while (stack.length) {
    const i = stack.pop()!;
    out.add(nodes[i]!.peer);
    stack.push(...nodes[i]!.children);
  }
  return out;
}

/** One tree of one iteration as the coordinator planned it. */
export interface TreePlan {
  readonly id: string;
  readonly jobId: string;
  readonly iteration: number;
  readonly nodes: readonly TreeNode[];
  /** the partial check's seed: handed to leaves only */
  readonly checkSeed: string;
  readonly buckets: number;
  /** worker id -> the lease ids issued to it with its role */
  readonly leases: ReadonlyMap<string, readonly string[]>;
}

export interface Refused {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly detail: string;
}

/**
 * May `uploader` claim lease `l` in a partial of tree `plan`? Only a lease
 * the coordinator issued, with the roles of this tree, to a strict
 * descendant of the uploader's node.
 */
export function claimable(plan: TreePlan, uploader: string, l: LeaseInfo): boolean {
  const at = plan.nodes.findIndex((n) => n.peer === uploader);
  if (at < 0) return false;
  return descendants(plan.nodes, at).has(l.workerId) && (plan.leases.get(l.workerId)?.includes(l.id) ?? false);
}

export interface PartialInput {
  readonly plan: TreePlan;
  readonly uploader: string;
  /** the leases the partial claims (its lease and bundle), as the ledger has them */
  readonly claimed: readonly LeaseInfo[];
  /** the leaves' sketch reports of this tree, by lease id */
  readonly reports: ReadonlyMap<string, SketchReport>;
  /** the partial's gradients in the result's tensor order */
  readonly grads: Iterable<Float32Array>;
  readonly count: number;
  readonly loss: number;
  readonly correct: number;
}

/**
 * The check of a partial before it counts: the claim (every lease issued in
 * this tree to a strict descendant of the uploader), the leaves (every
 * claimed lease in exactly one leaf report, each report claimed whole), the
 * scalars (count and correct exact, loss within float64 rounding) and the
 * sketch (the partial's, with the tree's check seed, equals the sum of the
 * leaves' within float32 rounding). Changes nothing.
 */
export function checkPartial(input: PartialInput): { readonly ok: true; readonly leaves: number; readonly sketch: Sketch } | Refused {
  const { plan, uploader, claimed } = input;
  const refuse = (code: ErrorCode, detail: string): Refused => ({ ok: false, code, detail });
  const at = plan.nodes.findIndex((n) => n.peer === uploader);
  if (at < 0) return refuse('coverage-claim', `worker ${uploader} has no node in tree ${plan.id}`);
  if (!plan.nodes[at]!.children.length) return refuse('coverage-claim', `worker ${uploader} is a leaf of tree ${plan.id}: a leaf uploads its own result without the tree header`);
  for (const l of claimed) {
    if (!claimable(plan, uploader, l)) return refuse('coverage-claim', `lease ${l.id} (task ${l.taskId}) was not assigned to the subtree of worker ${uploader} in tree ${plan.id}`);
  }
  const ids = new Set(claimed.map((l) => l.id));
  const leaves: SketchReport[] = [];
  for (const l of claimed) {
    const r = input.reports.get(l.id);
    if (!r) return refuse('coverage-claim', `lease ${l.id} has no sketch report: a leaf reports its sketch before it sends its result up`);
    if (leaves.includes(r)) continue;
    const outside = r.leaseIds.find((x) => !ids.has(x));
    if (outside) return refuse('coverage-claim', `the leaf result with lease ${l.id} also answers lease ${outside}, which the partial does not claim: a leaf's result is summed whole`);
    leaves.push(r);
  }
  const count = leaves.reduce((n, r) => n + r.count, 0);
  const correct = leaves.reduce((n, r) => n + r.correct, 0);
  const loss = leaves.reduce((n, r) => n + r.loss, 0);
  if (input.count !== count) return refuse('sketch-mismatch', `partial counts ${input.count} examples, its ${leaves.length} leaves reported ${count}`);
  if (input.correct !== correct) return refuse('sketch-mismatch', `partial counts ${input.correct} correct, its leaves reported ${correct}`);
  if (!(Math.abs(input.loss - loss) <= 1e-9 * Math.max(1, loss))) return refuse('sketch-mismatch', `partial loss ${input.loss} differs from its leaves' ${loss}`);
  const sum = leaves.slice(1).reduce((s, r) => addInto(s, r.tree), copy(leaves[0]!.tree));
  const sketch = sketchTensors(input.grads, plan.checkSeed, plan.buckets);
  const diff = compareSketch(sketch, sum, leaves.length);
  if (diff) {
    return refuse('sketch-mismatch', `partial of tree ${plan.id} from worker ${uploader}: sketch bucket ${diff.bucket} is ${diff.got}, its ${leaves.length} leaves sum to ${diff.expected} (tolerance ${diff.tolerance.toExponential(2)}); the sum was altered on the way`);
  }
  return { ok: true, leaves: leaves.length, sketch };
}

function copy(s: Sketch): { values: Float64Array; mass: Float64Array } {
  return { values: s.values.slice(), mass: s.mass.slice() };
}

function addInto(a: { values: Float64Array; mass: Float64Array }, b: Sketch): { values: Float64Array; mass: Float64Array } {
  if (a.values.length !== b.values.length) throw new RangeError('sketches of different bucket counts');
  for (let i = 0; i < a.values.length; i++) {
    a.values[i]! += b.values[i]!;
    a.mass[i]! += b.mass[i]!;
  }
  return a;
}
