/** Distributions of latencies: percentiles by the nearest-rank method, and a CDF for the charts. */

export interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** The value at quantile q (0..1) of sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    count: sorted.length,
    p50: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted[sorted.length - 1] ?? NaN),
    mean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
  };
}

/** Points of the empirical CDF, at every percent and the top of the tail: what the chart draws. */
export function cdfPoints(values: readonly number[]): { q: number; ms: number }[] {
  const sorted = [...values].sort((a, b) => a - b);
  const qs = [...Array.from({ length: 100 }, (_, i) => (i + 1) / 100), 0.995, 0.999];
  return qs
    .sort((a, b) => a - b)
    .map((q) => ({ q, ms: Math.round(quantile(sorted, q) * 100) / 100 }));
}
