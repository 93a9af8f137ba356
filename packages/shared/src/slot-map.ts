/**
 * A Map for short-lived values kept by a long-lived owner (the jobs a worker holds, the calls
 * under way): the values live in slots of one array, and a deleted value's slot is cleared.
 *
 * Why not a Map: V8 replaces a Map's hash table as entries come and go, and a long-lived Map's
 * new tables are made in the old generation. A replaced table is garbage but keeps the entries it
 * had, and until the next full collection every young value it points to survives each scavenge
 * and is promoted, with everything it references. A worker's maps of held jobs made V8 promote
 * about a job's whole object graph per job this way. Here the index holds keys and slot numbers
 * only, and the values array only ever grows (to the most values held at once).
 *
 * Iteration follows insertion order, as a Map's does.
 */
export class SlotMap<K, V> implements Map<K, V> {
  private readonly index = new Map<K, number>();
  private readonly slots: (V | undefined)[] = [];
  private readonly free: number[] = [];

  get size(): number {
    return this.index.size;
  }

  get [Symbol.toStringTag](): string {
    return 'SlotMap';
  }

  get(key: K): V | undefined {
    const slot = this.index.get(key);
    return slot === undefined ? undefined : this.slots[slot];
  }

  has(key: K): boolean {
    return this.index.has(key);
  }

  set(key: K, value: V): this {
    let slot = this.index.get(key);
    if (slot === undefined) {
      slot = this.free.pop() ?? this.slots.length;
      this.index.set(key, slot);
    }
    this.slots[slot] = value;
    return this;
  }

  delete(key: K): boolean {
    const slot = this.index.get(key);
    if (slot === undefined) return false;
    this.slots[slot] = undefined;
    this.index.delete(key);
    this.free.push(slot);
    return true;
  }

  clear(): void {
    for (const slot of this.index.values()) {
      this.slots[slot] = undefined;
      this.free.push(slot);
    }
    this.index.clear();
  }

  forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this) callback.call(thisArg, value, key, this);
  }

  keys(): MapIterator<K> {
    return this.index.keys();
  }

  *values(): MapIterator<V> {
    for (const slot of this.index.values()) yield this.slots[slot] as V;
  }

  *entries(): MapIterator<[K, V]> {
    for (const [key, slot] of this.index) yield [key, this.slots[slot] as V];
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}
