/**
 * The Bull Board queue adapters of a set of worker names: per name its event queue and its
 * dead-letter queue, all on one shared Redis connection. `update` adds and removes names as
 * workers.toml changes; queues of names that stay are kept as they are.
 */
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { deadLetterQueueName, eventQueueName } from '@changeq/store';
import { formatJobData } from './format.js';
import type { QueueKind } from './guard.js';

interface Entry {
  worker: string;
  kind: QueueKind;
  queue: Queue;
  adapter: BullMQAdapter;
}

export interface QueueRegistryOptions {
  redis: Redis;
  prefix: string;
  readOnly: boolean;
}

export class QueueRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #options: QueueRegistryOptions;

  constructor(options: QueueRegistryOptions) {
    this.#options = options;
  }

  /** The adapters in board order: each worker's event queue, then its dead-letter queue. */
  get adapters(): BullMQAdapter[] {
    return [...this.#entries.values()].map((entry) => entry.adapter);
  }

  get workers(): string[] {
    return [...new Set([...this.#entries.values()].map((entry) => entry.worker))];
  }

  kindOf(queueName: string): { kind: QueueKind; worker: string } | undefined {
    const entry = this.#entries.get(queueName);
    return entry === undefined ? undefined : { kind: entry.kind, worker: entry.worker };
  }

  /** Makes the registry hold exactly these workers' queues; returns what changed. */
  update(workers: readonly string[]): { added: string[]; removed: string[] } {
    const wanted = new Set(workers);
    const current = this.workers;
    const removed = current.filter((worker) => !wanted.has(worker));
    const added = workers.filter((worker) => !current.includes(worker));
    for (const [name, entry] of this.#entries) {
      if (!wanted.has(entry.worker)) {
        this.#entries.delete(name);
        void entry.queue.close().catch(() => undefined);
      }
    }
    // Rebuilt in the file's order, so the board lists workers as workers.toml does.
    const kept = new Map(this.#entries);
    this.#entries.clear();
    for (const worker of workers) {
      for (const kind of ['events', 'dead'] as const) {
        const name = kind === 'events' ? eventQueueName(worker) : deadLetterQueueName(worker);
        this.#entries.set(name, kept.get(name) ?? this.#create(worker, kind, name));
      }
    }
    return { added, removed };
  }

  #create(worker: string, kind: QueueKind, name: string): Entry {
    const queue = new Queue(name, {
      connection: this.#options.redis,
      prefix: this.#options.prefix,
      // A board only looks: it must not write the queue's meta hash as a producer would.
      skipMetasUpdate: true,
    });
    // Connection errors are logged once by the board; a queue must not crash the process with them.
    queue.on('error', () => undefined);
    const adapter = new BullMQAdapter(queue, {
      readOnlyMode: this.#options.readOnly || kind === 'dead',
      allowRetries: false,
      displayName: kind === 'events' ? `${worker}: events` : `${worker}: dead letters`,
      description:
        kind === 'events'
          ? `Change events routed to worker ${worker}, in oplog order per document (BullMQ queue ${name}).`
          : `Dead letters of worker ${worker}: events whose handler failed every attempt, and events parked behind them (BullMQ queue ${name}). Read-only here: retry or discard them with changeq dlq retry|discard --worker ${worker} --job <id>.`,
    });
    adapter.setFormatter('data', formatJobData);
    return { worker, kind, queue, adapter };
  }

  async close(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((entry) => entry.queue.close().catch(() => undefined)));
  }
}
