/**
 * Finds the line numbers of keys and array elements in a TOML text, so that errors found after
 * parsing (a duplicate worker name, an unknown key) can point at the line that caused them.
 *
 * This is a lenient scanner, not a parser: it only runs on text that smol-toml has already
 * accepted, and when it cannot tell it simply knows fewer locations (callers then report the
 * nearest enclosing key, or no line at all).
 */

/** Key paths are joined with this separator (it cannot appear in a TOML key we care about). */
const SEP = '\u0000';

export class TomlLocations {
  private readonly keyLines = new Map<string, number>();
  private readonly elementLines = new Map<string, number[]>();
  private readonly lineStarts: number[] = [0];
  private readonly text: string;
  private pos = 0;

  constructor(text: string) {
    this.text = text;
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
    }
    try {
      this.scanDocument();
    } catch {
      // A scanner bug must never hide the real error: keep the locations found so far.
    }
  }

  /** The line where the key at `path` is defined, or else where its nearest ancestor is. */
  lineOf(path: readonly string[]): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const line = this.keyLines.get(path.slice(0, n).join(SEP));
      if (line !== undefined) return line;
    }
    return undefined;
  }

  /** The line where the key at `path` itself is defined (no fallback to ancestors). */
  exactLineOf(path: readonly string[]): number | undefined {
    return this.keyLines.get(path.join(SEP));
  }

  /** The lines of the elements of the array stored at `path` (top-level elements only). */
  elementLinesOf(path: readonly string[]): readonly number[] {
    return this.elementLines.get(path.join(SEP)) ?? [];
  }

  private lineAt(offset: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  private record(path: readonly string[], offset: number): void {
    const key = path.join(SEP);
    if (!this.keyLines.has(key)) this.keyLines.set(key, this.lineAt(offset));
  }

  private peek(ahead = 0): string {
    return this.text.charAt(this.pos + ahead);
  }

  private skipSpaceAndComments(newlines: boolean): void {
    while (this.pos < this.text.length) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || (newlines && c === '\n')) {
        this.pos++;
      } else if (c === '#') {
        while (this.pos < this.text.length && this.peek() !== '\n') this.pos++;
      } else {
        return;
      }
    }
  }

  private scanDocument(): void {
    let table: string[] = [];
    while (this.pos < this.text.length) {
      this.skipSpaceAndComments(true);
      if (this.pos >= this.text.length) return;
      if (this.peek() === '[') {
        const start = this.pos;
        const isArrayTable = this.peek(1) === '[';
        this.pos += isArrayTable ? 2 : 1;
        table = this.scanKey();
        this.record(table, start);
        this.pos += isArrayTable ? 2 : 1;
        this.skipToLineEnd();
      } else {
        this.scanKeyValue(table);
        this.skipToLineEnd();
      }
    }
  }

  private skipToLineEnd(): void {
    while (this.pos < this.text.length && this.peek() !== '\n') this.pos++;
  }

  /** Reads a (dotted) key and leaves the position after it and any spaces. */
  private scanKey(): string[] {
    const parts: string[] = [];
    for (;;) {
      this.skipSpaceAndComments(false);
      const c = this.peek();
      if (c === '"' || c === "'") {
        parts.push(this.scanString());
      } else {
        const start = this.pos;
        while (/[A-Za-z0-9_-]/.test(this.peek())) this.pos++;
        if (this.pos === start) throw new Error('not a key');
        parts.push(this.text.slice(start, this.pos));
      }
      this.skipSpaceAndComments(false);
      if (this.peek() !== '.') return parts;
      this.pos++;
    }
  }

  private scanKeyValue(table: readonly string[]): void {
    const start = this.pos;
    const path = [...table, ...this.scanKey()];
    this.record(path, start);
    if (this.peek() !== '=') throw new Error('expected =');
    this.pos++;
    this.skipSpaceAndComments(false);
    this.scanValue(path);
  }

  private scanValue(path: readonly string[]): void {
    const c = this.peek();
    if (c === '"' || c === "'") {
      this.scanString();
    } else if (c === '[') {
      this.scanArray(path);
    } else if (c === '{') {
      this.scanInlineTable(path);
    } else {
      while (this.pos < this.text.length && !/[\s,\]}#]/.test(this.peek())) this.pos++;
    }
  }

  private scanArray(path: readonly string[]): void {
    const lines: number[] = [];
    this.elementLines.set(path.join(SEP), lines);
    this.pos++; // [
    for (;;) {
      this.skipSpaceAndComments(true);
      if (this.pos >= this.text.length) return;
      if (this.peek() === ']') {
        this.pos++;
        return;
      }
      lines.push(this.lineAt(this.pos));
      this.scanValue([...path, String(lines.length - 1)]);
      this.skipSpaceAndComments(true);
      if (this.peek() === ',') this.pos++;
    }
  }

  private scanInlineTable(path: readonly string[]): void {
    this.pos++; // {
    for (;;) {
      this.skipSpaceAndComments(true);
      if (this.pos >= this.text.length) return;
      if (this.peek() === '}') {
        this.pos++;
        return;
      }
      this.scanKeyValue(path);
      this.skipSpaceAndComments(true);
      if (this.peek() === ',') this.pos++;
    }
  }

  /** Reads any of TOML's four string forms and returns its (approximately decoded) content. */
  private scanString(): string {
    const quote = this.peek();
    const multi = this.peek(1) === quote && this.peek(2) === quote;
    const delimiter = multi ? quote.repeat(3) : quote;
    this.pos += delimiter.length;
    let value = '';
    while (this.pos < this.text.length) {
      if (this.text.startsWith(delimiter, this.pos)) {
        this.pos += delimiter.length;
        // A multi-line string may end with up to two extra quotes before the delimiter.
        while (multi && this.peek() === quote) {
          value += quote;
          this.pos++;
        }
        return value;
      }
      const c = this.peek();
      if (c === '\\' && quote === '"') {
        const escaped = this.decodeEscape();
        value += escaped;
        continue;
      }
      value += c;
      this.pos++;
    }
    return value;
  }

  private decodeEscape(): string {
    const c = this.peek(1);
    const simple: Record<string, string> = {
      b: '\b',
      t: '\t',
      n: '\n',
      f: '\f',
      r: '\r',
      e: '\u001b',
      '"': '"',
      '\\': '\\',
    };
    const mapped = simple[c];
    if (mapped !== undefined) {
      this.pos += 2;
      return mapped;
    }
    const hexLength = c === 'u' ? 4 : c === 'U' ? 8 : c === 'x' ? 2 : 0;
    if (hexLength > 0) {
      const hex = this.text.slice(this.pos + 2, this.pos + 2 + hexLength);
      this.pos += 2 + hexLength;
      const code = Number.parseInt(hex, 16);
      return Number.isInteger(code) && code <= 0x10ffff ? String.fromCodePoint(code) : '';
    }
    // Line-ending backslash in a multi-line string: skip it and the following whitespace.
    this.pos++;
    while (/\s/.test(this.peek())) this.pos++;
    return '';
  }
}
