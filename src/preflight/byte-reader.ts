/**
 * Sequential reads over a stream of chunks (a file read piece by piece, or a
 * decompressor's output), so the initramfs is parsed as it streams past and
 * never held whole (src/preflight/cpio.ts). Only what is asked for is copied
 * out; skipped bytes are handed to a sink as views and then dropped.
 */

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already consumed. */
  private used = 0;
  /** Unconsumed bytes held in chunks. */
  private held = 0;
  private ended = false;
  /** Bytes consumed so far: the stream offset of the next byte. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Hold at least n unconsumed bytes, or all that is left. */
  private async fill(n: number): Promise<void> {
    while (this.held < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.held += r.value.length;
      }
    }
  }

  private consume(n: number): void {
    this.offset += n;
    this.held -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.used;
      if (n < left) {
        this.used += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.used = 0;
    }
  }

  /** A copy of the next n bytes (fewer only at the end of the stream). */
  private copy(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    for (let i = 0; at < n; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.used : 0;
      const take = Math.min(c.length - from, n - at);
      out.set(c.subarray(from, from + take), at);
      at += take;
    }
    return out;
  }

  /** The next n bytes, not consumed (fewer only at the end of the stream). */
  async peek(n: number): Promise<Uint8Array> {
    await this.fill(n);
    return this.copy(Math.min(n, this.held));
  }

  /** The next n bytes, consumed, as a copy of their own (fewer only at the end of the stream). */
  async read(n: number): Promise<Uint8Array> {
    await this.fill(n);
    const out = this.copy(Math.min(n, this.held));
    this.consume(out.length);
    return out;
  }

  /** Consume up to n bytes, each piece shown to `sink` (a view, valid during the call); returns how many there were. */
  async skip(n: number, sink?: (piece: Uint8Array) => void): Promise<number> {
    let got = 0;
    for await (const piece of this.take(n)) {
      sink?.(piece);
      got += piece.length;
    }
    return got;
  }

  /**
   * Consume up to n bytes and hand them on as views of the source's own
   * pieces (no copy; the sources here never reuse a piece's memory). Fewer
   * than n only at the end of the stream: the caller counts what came.
   */
  async *take(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.held === 0) await this.fill(1);
      if (this.held === 0) return;
      const c = this.chunks[0]!;
      const take = Math.min(c.length - this.used, left);
      const piece = c.subarray(this.used, this.used + take);
      this.consume(take);
      left -= take;
      yield piece;
    }
  }

  /** Consume a run of zero bytes; returns its length. */
  async skipZeros(): Promise<number> {
    let n = 0;
    for (;;) {
      if (this.held === 0) await this.fill(1);
      if (this.held === 0) return n;
      const c = this.chunks[0]!;
      let i = this.used;
      while (i < c.length && c[i] === 0) i++;
      const run = i - this.used;
      this.consume(run);
      n += run;
      if (i < c.length) return n;
    }
  }

  /** Stop the source (a decompressor is torn down, a file read ends). */
  async close(): Promise<void> {
    this.chunks = [];
    this.held = 0;
    if (!this.ended) {
      this.ended = true;
      await this.it.return?.();
    }
  }
}
