/**
 * The ICE servers (STUN/TURN) the coordinator hands tabs for their data
 * channels: `TESSERA_ICE_SERVERS`, a JSON array of RTCIceServer, e.g.
 * `[{"urls":"stun:turn.example.org:3478"},{"urls":"turn:turn.example.org:3478","username":"u","credential":"p"}]`.
 * None by default: tabs on one network connect with host candidates.
 */
import * as v from 'valibot';
import type { IceServer } from '../../core/protocol/index.ts';
import { parseWith } from '../../core/schemas.ts';

const url = v.pipe(v.string(), v.regex(/^(stun|stuns|turn|turns):[^\s]{1,200}$/, 'expected a stun:, stuns:, turn: or turns: URL'));
const IceServers = v.pipe(
  v.array(v.object({ urls: v.union([url, v.pipe(v.array(url), v.minLength(1))]), username: v.optional(v.string()), credential: v.optional(v.string()) })),
  v.maxLength(16),
);

export function iceServersFromEnv(text: string | undefined): IceServer[] {
  if (text === undefined || text.trim() === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`TESSERA_ICE_SERVERS is not JSON (${(e as Error).message}); expected an array like [{"urls":"stun:host:3478"}]`);
  }
  return parseWith(IceServers, json, 'TESSERA_ICE_SERVERS');
}
