import { debuglog } from "node:util";
import { type Etcd3, GRPCResourceExhastedError, type IKeyValue } from "etcd3";

const debug = debuglog("farcall:registry");

/** Keys asked for per page: 64 endpoints of at most 8 KiB fit well under gRPC's 4 MiB answer limit. */
const pageKeys = 64;

/** The first key after every key that starts with `prefix` (etcd's `range_end` of a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * Every key under `prefix` (sorted, at most `maxKeys`) as of one revision, which it returns: the
 * first page is read at the current revision and the others at that same revision, so the
 * result is one consistent snapshot however long the reading takes. A page whose answer would
 * be over gRPC's 4 MiB limit (hostile values of up to etcd's 1.5 MiB) is asked for again in
 * smaller pages, down to one key, instead of failing the whole read.
 * @throws etcd3's error (unreachable; the revision compacted between two pages: read again).
 */
export async function readPrefix(client: Etcd3, prefix: string, maxKeys: number): Promise<{ kvs: IKeyValue[]; revision: number }> {
  const start = Buffer.from(prefix);
  const end = prefixEnd(start);
  const kvs: IKeyValue[] = [];
  let from = start;
  let revision = 0;
  let limit = pageKeys;
  for (;;) {
    let response;
    try {
      response = await client.kv.range({ key: from, range_end: end, limit: Math.min(limit, maxKeys - kvs.length), revision });
    } catch (error) {
      if (!(error instanceof GRPCResourceExhastedError) || limit === 1) throw error;
      limit = Math.max(1, limit >> 3);
      debug("etcd: %s: a page was too large; reading %d keys at a time", prefix, limit);
      continue;
    }
    if (revision === 0) revision = Number(response.header.revision);
    kvs.push(...response.kvs);
    const last = response.kvs.at(-1);
    if (!response.more || last === undefined) break;
    if (kvs.length >= maxKeys) {
      debug("etcd: %s: over %d keys; reading the first %d", prefix, maxKeys, maxKeys);
      break;
    }
    from = Buffer.concat([last.key, Buffer.from([0])]);
    limit = pageKeys;
  }
  return { kvs, revision };
}
