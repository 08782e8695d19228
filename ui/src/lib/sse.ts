// Stream readers over fetch()'s ReadableStream: Server-Sent Events and NDJSON.
//
// EventSource can't POST, send headers, or be aborted per request, so chat streams are read
// from fetch(). Network chunks arrive at arbitrary byte boundaries: a line, a UTF-8 sequence or
// a CRLF pair may be split across reads, so the decoder runs in streaming mode and a carry
// buffer keeps the unterminated tail of the text until the next read.
//
// SSE parsing follows the WHATWG "event stream interpretation" rules:
//   - lines end in CRLF, LF or CR; a leading BOM is dropped;
//   - `:comment` lines are ignored; `field: value` strips one space after the colon; a line
//     without a colon is a field with an empty value;
//   - `data:` lines accumulate (joined with "\n"); `event:` sets the type (default "message");
//   - `id:` sets the last event id (kept for later events; ignored if it contains NUL);
//   - a blank line dispatches the event, unless no data was received;
//   - an event not terminated by a blank line when the stream ends is discarded.
// `retry:` and unknown fields are ignored (no automatic reconnection over fetch).

export interface SseEvent {
  /** The `event:` field, or "message". */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last event id seen on this stream so far ("" if none), as EventSource reports it. */
  id: string;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

/** Splits text into lines (CRLF, LF or CR), carrying the unterminated tail between pushes. */
export class LineSplitter {
  private carry = '';
  /** The previous push ended in CR, so a leading LF in the next push completes a CRLF. */
  private pendingCr = false;

  push(text: string): string[] {
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    if (text === '') return [];

    // The carry holds no line break, so scanning starts at the new text.
    const buffer = this.carry + text;
    const lines: string[] = [];
    let start = 0;
    for (let i = this.carry.length; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      lines.push(buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
    }
    this.carry = buffer.slice(start);
    return lines;
  }

  /** End of input: the unterminated last line, if any. */
  flush(): string | null {
    const rest = this.carry;
    this.carry = '';
    this.pendingCr = false;
    return rest === '' ? null : rest;
  }
}

/** Incremental SSE field parser: feed it lines, it returns an event on each dispatch. */
export class SseParser {
  private data: string[] = [];
  private hasData = false;
  private eventType = '';
  private lastEventId = '';

  /** Process one line (without its terminator); returns the event it dispatched, if any. */
  line(line: string): SseEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;

    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);

    switch (field) {
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      default:
        // `retry` and unknown fields: ignored.
        break;
    }
    return null;
  }

  /** The id from the most recent `id:` line ("" if none): what to send as Last-Event-ID. */
  get lastId(): string {
    return this.lastEventId;
  }

  private dispatch(): SseEvent | null {
    const hasData = this.hasData;
    const event: SseEvent = {
      event: this.eventType || 'message',
      data: this.data.join('\n'),
      id: this.lastEventId,
    };
    this.data = [];
    this.hasData = false;
    this.eventType = '';
    return hasData ? event : null;
  }
}

/**
 * Yields the decoded lines of a byte stream. Cancels the stream when the consumer stops early
 * or `signal` aborts (then throws the signal's reason, an AbortError by default).
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string, void, undefined> {
  if (signal?.aborted) {
    await stream.cancel(abortError(signal)).catch(() => undefined);
    throw abortError(signal);
  }
  const reader = stream.getReader();
  // Cancelling the reader settles a pending read() with {done: true}, so an abort unblocks the
  // loop even when the stream itself ignores the signal.
  const onAbort = () => {
    reader.cancel(signal ? abortError(signal) : undefined).catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const decoder = new TextDecoder('utf-8'); // strips a leading BOM
  const splitter = new LineSplitter();
  let finished = false;
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (err) {
        if (signal?.aborted) throw abortError(signal);
        throw err;
      }
      if (signal?.aborted) throw abortError(signal);
      if (result.done) break;
      for (const line of splitter.push(decoder.decode(result.value, { stream: true }))) {
        yield line;
        if (signal?.aborted) throw abortError(signal);
      }
    }
    finished = true;
    for (const line of splitter.push(decoder.decode())) yield line;
    const last = splitter.flush();
    if (last !== null) yield last;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}

/**
 * Reads a `text/event-stream` body. Events split across network chunks, multi-line data and
 * ids are handled; see the file header for the exact rules.
 *
 *   const res = await requestStream('POST', '/api/chat', body, { signal });
 *   for await (const ev of readSse(res.body!, signal)) { ... }
 */
export async function* readSse(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<SseEvent, void, undefined> {
  const parser = new SseParser();
  for await (const line of readLines(stream, signal)) {
    const event = parser.line(line);
    if (event) yield event;
  }
}

/**
 * Reads an `application/x-ndjson` body: one JSON value per line; blank lines are skipped and
 * the last line needs no terminator. A malformed line throws a SyntaxError.
 */
export async function* readNdjson<T = unknown>(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<T, void, undefined> {
  for await (const line of readLines(stream, signal)) {
    if (line.trim() === '') continue;
    yield JSON.parse(line) as T;
  }
}
