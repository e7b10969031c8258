/**
 * The calls awaiting replies on one connection, by request id. Request ids are sequential, so a
 * fixed ring indexed by `id & mask` holds them without hashing and without the rehashing churn of a
 * `Map` that gains and loses hundreds of entries per batch; an id whose ring slot is still taken
 * by a much older call goes to a small overflow map.
 */
export class PendingTable<T extends { readonly id: number }> {
  readonly #ring: Array<T | undefined>;
  readonly #mask: number;
  readonly #overflow = new Map<number, T>();
  #size = 0;

  /** @param capacity ring size, rounded up to a power of two. Default 4096. */
  constructor(capacity = 4096) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.#ring = new Array<T | undefined>(size).fill(undefined);
    this.#mask = size - 1;
  }

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const entry = this.#ring[id & this.#mask];
    if (entry !== undefined && entry.id === id) return entry;
    return this.#overflow.size === 0 ? undefined : this.#overflow.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds `entry`; its id must not be in the table. */
  set(entry: T): void {
    const index = entry.id & this.#mask;
    if (this.#ring[index] === undefined) this.#ring[index] = entry;
    else this.#overflow.set(entry.id, entry);
    this.#size++;
  }

  delete(id: number): boolean {
    const index = id & this.#mask;
    const entry = this.#ring[index];
    if (entry !== undefined && entry.id === id) {
      this.#ring[index] = undefined;
      this.#size--;
      return true;
    }
    if (this.#overflow.delete(id)) {
      this.#size--;
      return true;
    }
    return false;
  }

  /** Removes and returns every entry. */
  drain(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.#ring.length; i++) {
      const entry = this.#ring[i];
      if (entry !== undefined) {
        out.push(entry);
        this.#ring[i] = undefined;
      }
    }
    for (const entry of this.#overflow.values()) out.push(entry);
    this.#overflow.clear();
    this.#size = 0;
    return out;
  }
}
