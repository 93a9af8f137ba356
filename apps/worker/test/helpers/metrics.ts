/** Reading a worker process's /metrics (Prometheus text) in tests. */

/** The values of the samples of `name` whose labels include `labels`. */
export function samples(text: string, name: string, labels: Record<string, string> = {}): number[] {
  const values: number[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) {
      values.push(Number(match[3]));
    }
  }
  return values;
}

/** The sum of those samples (0 when there is none). */
export function total(text: string, name: string, labels: Record<string, string> = {}): number {
  return samples(text, name, labels).reduce((sum, value) => sum + value, 0);
}

/** Fetches http://127.0.0.1:<port>/metrics. */
export async function scrape(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}
