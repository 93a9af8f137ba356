import type { Timestamp } from 'mongodb';

/** `1795318825.2` */
export function clusterTimeText(time: Timestamp): string {
  return `${time.getHighBitsUnsigned()}.${time.getLowBitsUnsigned()}`;
}

export function clusterTimeDate(time: Timestamp): Date {
  return new Date(time.getHighBitsUnsigned() * 1000);
}

export function clusterTimeJson(time: Timestamp): { t: number; i: number } {
  return { t: time.getHighBitsUnsigned(), i: time.getLowBitsUnsigned() };
}

/** `4.2 s`, `3 min 12 s`, `2 h 5 min`, `3 d 4 h` */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, seconds);
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.round((s % 86_400) / 3600)} h`;
}

/** Left-aligned first column, right-aligned numbers. */
export function table(header: string[], rows: (string | number)[][]): string {
  const all = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, col) =>
          col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0),
        )
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
