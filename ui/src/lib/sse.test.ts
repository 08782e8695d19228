import { describe, expect, it } from 'vitest';
import { LineSplitter, readLines, readNdjson, readSse, type SseEvent } from './sse';

const encoder = new TextEncoder();

/** A byte stream delivering exactly the given chunks, one per read(). */
function chunked(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk);
    },
  });
}

/** Every way of cutting `bytes` into single-byte reads. */
function bytewise(text: string): Uint8Array[] {
  return Array.from(encoder.encode(text), (b) => Uint8Array.of(b));
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const ev = (data: string, event = 'message', id = ''): SseEvent => ({ event, data, id });

describe('readSse', () => {
  it('parses single-chunk events', async () => {
    const events = await collect(readSse(chunked(['data: hello\n\ndata: world\n\n'])));
    expect(events).toEqual([ev('hello'), ev('world')]);
  });

  it('reassembles events split across reads at every byte boundary', async () => {
    const text = 'event: delta\nid: 7\ndata: {"text":"héllo 👋"}\n\nevent: done\ndata: [DONE]\n\n';
    const expected = [ev('{"text":"héllo 👋"}', 'delta', '7'), ev('[DONE]', 'done', '7')];
    // Every two-way split (including inside multi-byte UTF-8 sequences) ...
    const bytes = encoder.encode(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const events = await collect(readSse(chunked([bytes.slice(0, cut), bytes.slice(cut)])));
      expect(events, `cut at byte ${cut}`).toEqual(expected);
    }
    // ... and one byte per read.
    expect(await collect(readSse(chunked(bytewise(text))))).toEqual(expected);
  });

  it('splits a field name, its colon and value over several reads', async () => {
    const events = await collect(readSse(chunked(['da', 'ta', ':', ' par', 'tial', '\n', '\n'])));
    expect(events).toEqual([ev('partial')]);
  });

  it('joins multi-line data with newlines', async () => {
    const events = await collect(readSse(chunked(['data: line 1\ndata: line 2\ndata:\ndata: 4\n\n'])));
    expect(events).toEqual([ev('line 1\nline 2\n\n4')]);
  });

  it('handles CRLF, CR and LF line endings, including CRLF split across reads', async () => {
    const events = await collect(
      readSse(chunked(['data: a\r', '\ndata: b\r\n\r', '\ndata: c\rdata: d\r\r', 'data: e\n\n'])),
    );
    expect(events).toEqual([ev('a\nb'), ev('c\nd'), ev('e')]);
  });

  it('tracks ids: kept across events, reset by an empty id, NUL ids ignored', async () => {
    const events = await collect(
      readSse(
        chunked([
          'id: 1\ndata: a\n\n',
          'data: b\n\n',
          'id: 2\nevent: x\ndata: c\n\n',
          'id\ndata: d\n\n',
          'id: 3\n\nid: bad\u0000id\ndata: e\n\n',
        ]),
      ),
    );
    expect(events).toEqual([ev('a', 'message', '1'), ev('b', 'message', '1'), ev('c', 'x', '2'), ev('d'), ev('e', 'message', '3')]);
  });

  it('follows the field rules: comments, no-space values, colon-less fields, unknown fields', async () => {
    const events = await collect(
      readSse(
        chunked([
          ': keep-alive\n\n',
          'data:no space\n\n',
          'data:  two spaces\n\n',
          'data\n\n',
          'retry: 1000\nfoo: bar\ndata: x: y\n\n',
          'event: only-type\n\n', // no data: not dispatched, and the type does not leak
          'data: after\n\n',
        ]),
      ),
    );
    expect(events).toEqual([ev('no space'), ev(' two spaces'), ev(''), ev('x: y'), ev('after')]);
  });

  it('drops a leading BOM and discards an unterminated final event', async () => {
    const events = await collect(readSse(chunked(['\uFEFFdata: first\n\n', 'data: cut off'])));
    expect(events).toEqual([ev('first')]);
  });

  it('aborts a pending read and throws AbortError', async () => {
    const controller = new AbortController();
    let cancelled: unknown = 'not cancelled';
    // Sends one event, then stalls forever (like a hung upstream).
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(encoder.encode('data: one\n\n'));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const seen: string[] = [];
    const run = (async () => {
      for await (const e of readSse(stream, controller.signal)) {
        seen.push(e.data);
        setTimeout(() => controller.abort(), 5);
      }
    })();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['one']);
    expect(cancelled).toMatchObject({ name: 'AbortError' });
    expect(stream.locked).toBe(false);
  });

  it('stops between events when aborted by the consumer', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const run = (async () => {
      for await (const e of readSse(chunked(['data: 1\n\ndata: 2\n\ndata: 3\n\n']), controller.signal)) {
        seen.push(e.data);
        if (e.data === '1') controller.abort();
      }
    })();
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['1']);
  });

  it('throws immediately for an already-aborted signal, with the custom reason', async () => {
    const reason = new Error('user left');
    const stream = chunked(['data: never\n\n']);
    await expect(collect(readSse(stream, AbortSignal.abort(reason)))).rejects.toBe(reason);
  });

  it('cancels the stream when the consumer breaks early', async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(encoder.encode('data: 1\n\ndata: 2\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const e of readSse(stream)) {
      expect(e.data).toBe('1');
      break;
    }
    expect(cancelled).toBe(true);
    expect(stream.locked).toBe(false);
  });

  it('propagates stream errors', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(encoder.encode('data: 1\n\n'));
        c.error(new TypeError('network reset'));
      },
    });
    await expect(collect(readSse(stream))).rejects.toThrow('network reset');
  });
});

describe('readNdjson', () => {
  it('parses lines split across reads, skips blanks, accepts a final unterminated line', async () => {
    const text = '{"a":1}\r\n\n{"b":"é"}\n{"c":[1,2]}';
    const expected = [{ a: 1 }, { b: 'é' }, { c: [1, 2] }];
    expect(await collect(readNdjson(chunked(bytewise(text))))).toEqual(expected);
    expect(await collect(readNdjson(chunked(['{"a":', '1}\r', '\n\n{"b":"é"}\n{"c":[1,2]}'])))).toEqual(
      expected,
    );
  });

  it('throws on a malformed line', async () => {
    await expect(collect(readNdjson(chunked(['{"a":1}\n{oops}\n'])))).rejects.toThrow(SyntaxError);
  });
});

describe('LineSplitter / readLines', () => {
  it('carries partial lines and CR across pushes', () => {
    const s = new LineSplitter();
    expect(s.push('ab')).toEqual([]);
    expect(s.push('c\r')).toEqual(['abc']);
    expect(s.push('\n')).toEqual([]);
    expect(s.push('\n')).toEqual(['']);
    expect(s.push('x\r\ry')).toEqual(['x', '']);
    expect(s.flush()).toBe('y');
    expect(s.flush()).toBeNull();
  });

  it('yields the trailing unterminated line at end of stream', async () => {
    expect(await collect(readLines(chunked(['one\ntw', 'o'])))).toEqual(['one', 'two']);
  });
});
