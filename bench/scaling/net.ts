/**
 * The rig's sandbox: one network namespace per worker slot, joined to the
 * host by a veth pair whose host end sits on a bridge the coordinator
 * listens on; each link shaped by tc tbf both ways; one cgroup v1 cpu group
 * per worker (and one, unlimited, for the coordinator, so cleanup can find
 * every process). Every name carries the run's tag, so `cleanup(tag)` (and
 * run.sh's trap, which does the same in bash) removes exactly what this run
 * made. Needs root.
 *
 *   host                         namespace tessera-rig-<tag>-<i>
 *   bridge tr<tag>b 10.77.S.1/24
 *     └ veth tr<tag>h<i>  ───────  tr<tag>n<i> 10.77.S.(10+i)/24
 *       tbf: down rate              tbf: up rate
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Profile {
  /** coordinator -> worker, Mbit/s; null: unshaped */
  readonly downMbit: number | null;
  /** worker -> coordinator, Mbit/s; null: unshaped */
  readonly upMbit: number | null;
}

export const PROFILES: Readonly<Record<string, Profile>> = {
  lan: { downMbit: null, upMbit: null },
  home: { downMbit: 50, upMbit: 10 },
  mobile: { downMbit: 10, upMbit: 2 },
};

const CG_ROOT = '/sys/fs/cgroup/cpu';

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function quiet(cmd: string, args: readonly string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // already gone
  }
}

export interface Sandbox {
  readonly tag: string;
  /** the bridge's address: the coordinator listens here */
  readonly hostIp: string;
  readonly slots: readonly Slot[];
  /** the coordinator's cgroup (cpu unlimited) */
  readonly coordCgroup: string;
}

export interface Slot {
  readonly index: number;
  readonly ns: string;
  /** host end of the veth: its tx is the worker's download, its rx its upload */
  readonly hostIf: string;
  readonly nsIf: string;
  readonly ip: string;
  /** cgroup folder; write a pid to its cgroup.procs */
  readonly cgroup: string;
}

export const nsName = (tag: string, i: number): string => `tessera-rig-${tag}-${i}`;
export const cgroupRoot = (tag: string): string => join(CG_ROOT, `tessera-rig-${tag}`);

/** tbf for `mbit` on `dev` (inside `ns` when given): burst of at least one 10 ms tick, 100 ms of queue. */
function shape(dev: string, mbit: number, ns?: string): void {
  const burst = Math.max(32 * 1024, Math.ceil((mbit * 1e6) / 8 / 100));
  const args = ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', String(burst), 'latency', '100ms'];
  if (ns) sh('ip', ['netns', 'exec', ns, 'tc', ...args]);
  else sh('tc', args);
}

/** A free 10.77.S.0/24 (S from the tag, else the next unused). */
function pickSubnet(tag: string): number {
  const used = sh('ip', ['-4', '-o', 'addr']);
  let s = 100 + (parseInt(tag, 16) % 100);
  for (let k = 0; k < 100 && used.includes(`10.77.${s}.`); k++) s = 100 + ((s - 99) % 100);
  if (used.includes(`10.77.${s}.`)) throw new Error('no free 10.77.S.0/24 subnet for the rig');
  return s;
}

/** Makes the bridge, `n` namespaces with shaped links and cpu-capped cgroups. Undo with cleanup(tag). */
export function createSandbox(tag: string, n: number, profile: Profile, cpu: number): Sandbox {
  if (!/^[0-9a-f]{4}$/.test(tag)) throw new Error(`tag must be 4 hex digits, got ${tag}`);
  const s = pickSubnet(tag);
  const br = `tr${tag}b`;
  const hostIp = `10.77.${s}.1`;
  const cgRoot = cgroupRoot(tag);
  mkdirSync(cgRoot, { recursive: true });
  const coordCgroup = join(cgRoot, 'coordinator');
  mkdirSync(coordCgroup, { recursive: true });
  sh('ip', ['link', 'add', br, 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${hostIp}/24`, 'dev', br]);
  sh('ip', ['link', 'set', br, 'up']);
  const slots: Slot[] = [];
  for (let i = 0; i < n; i++) slots.push(addSlot(tag, s, i, br, profile, cpu));
  return { tag, hostIp, slots, coordCgroup };
}

function addSlot(tag: string, s: number, i: number, br: string, profile: Profile, cpu: number): Slot {
  const ns = nsName(tag, i);
  const hostIf = `tr${tag}h${i}`;
  const nsIf = `tr${tag}n${i}`;
  const ip = `10.77.${s}.${10 + i}`;
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
  sh('ip', ['link', 'set', hostIf, 'master', br]);
  sh('ip', ['link', 'set', hostIf, 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${ip}/24`, 'dev', nsIf]);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
  if (profile.downMbit !== null) shape(hostIf, profile.downMbit);
  if (profile.upMbit !== null) shape(nsIf, profile.upMbit, ns);
  const cgroup = join(cgroupRoot(tag), `w${i}`);
  mkdirSync(cgroup, { recursive: true });
  const period = 100_000;
  writeFileSync(join(cgroup, 'cpu.cfs_period_us'), String(period));
  writeFileSync(join(cgroup, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(cpu * period))));
  return { index: i, ns, hostIf, nsIf, ip, cgroup };
}

/** Bytes through a slot's link so far (host end: tx = down to the worker, rx = up from it). */
export function linkBytes(slot: Slot): { down: number; up: number } {
  const stat = (k: string): number => Number(readFileSync(`/sys/class/net/${slot.hostIf}/statistics/${k}`, 'utf8'));
  return { down: stat('tx_bytes'), up: stat('rx_bytes') };
}

function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every pid in the run's cgroups (workers and coordinator). */
export function sandboxPids(tag: string): number[] {
  const root = cgroupRoot(tag);
  if (!existsSync(root)) return [];
  const dirs = [root, ...readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(root, d.name))];
  return dirs.flatMap(cgroupPids);
}

/**
 * Removes everything of run `tag`: kills what is left in its cgroups and
 * namespaces, deletes the namespaces (their veth pairs and qdiscs go with
 * them), the bridge and the cgroups. Safe to call twice, and on a half-made
 * sandbox. Returns what it could not remove.
 */
export function cleanup(tag: string): string[] {
  for (const pid of sandboxPids(tag)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  const left: string[] = [];
  const nsList = sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`tessera-rig-${tag}-`));
  for (const ns of nsList) {
    const pids = sh('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    quiet('ip', ['netns', 'del', ns]);
  }
  for (const line of sh('ip', ['-o', 'link']).split('\n')) {
    const m = /^\d+: (tr[0-9a-f]{4}[bh]\d*)[@:]/.exec(line);
    if (m && m[1]!.startsWith(`tr${tag}`)) quiet('ip', ['link', 'del', m[1]!]);
  }
  const root = cgroupRoot(tag);
  if (existsSync(root)) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const subs = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory());
      for (const d of subs) {
        try {
          rmdirSync(join(root, d.name));
        } catch {
          // still has a dying process: retry
        }
      }
      try {
        rmdirSync(root);
        break;
      } catch {
        execFileSync('sleep', ['0.1']);
      }
    }
    if (existsSync(root)) left.push(root);
  }
  if (sh('ip', ['netns', 'list']).includes(`tessera-rig-${tag}-`)) left.push(`namespaces tessera-rig-${tag}-*`);
  if (sh('ip', ['-o', 'link']).includes(`tr${tag}`)) left.push(`links tr${tag}*`);
  return left;
}

/** Tags of runs whose namespaces, links or cgroups are still here (a run killed with SIGKILL). */
export function leftoverTags(): string[] {
  const tags = new Set<string>();
  for (const m of sh('ip', ['netns', 'list']).matchAll(/tessera-rig-([0-9a-f]{4})-/g)) tags.add(m[1]!);
  for (const m of sh('ip', ['-o', 'link']).matchAll(/: tr([0-9a-f]{4})[bh]/g)) tags.add(m[1]!);
  if (existsSync(CG_ROOT)) for (const d of readdirSync(CG_ROOT)) {
    const m = /^tessera-rig-([0-9a-f]{4})$/.exec(d);
    if (m) tags.add(m[1]!);
  }
  return [...tags];
}
