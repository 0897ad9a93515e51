// Walks a message's gather list, handing out the next n bytes as views (no copies), so a
// message can be cut into frames of any size without concatenating its parts.
export class MessageCursor {
  readonly length: number;
  readonly #parts: readonly Buffer[];
  #index = 0;
  #offset = 0;
  #taken = 0;

  constructor(parts: readonly Buffer[]) {
    this.#parts = parts;
    let n = 0;
    for (const p of parts) n += p.byteLength;
    this.length = n;
  }

  /** Bytes already handed out. */
  get taken(): number {
    return this.#taken;
  }

  get remaining(): number {
    return this.length - this.#taken;
  }

  /** The next min(n, remaining) bytes as a list of views into the parts. */
  take(n: number): Buffer[] {
    const out: Buffer[] = [];
    let want = Math.min(n, this.remaining);
    this.#taken += want;
    while (want > 0) {
      const part = this.#parts[this.#index] as Buffer;
      const avail = part.byteLength - this.#offset;
      if (avail === 0) {
        this.#index += 1;
        this.#offset = 0;
        continue;
      }
      const m = Math.min(avail, want);
      out.push(m === part.byteLength ? part : part.subarray(this.#offset, this.#offset + m));
      this.#offset += m;
      want -= m;
    }
    return out;
  }
}
