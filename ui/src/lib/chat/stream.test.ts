import { describe, expect, it } from 'vitest';
import { frame, sseResponse } from '../../test/streams';
import { readGeneration, toGenerationEvent } from './stream';

describe('toGenerationEvent', () => {
  it('types the known events', () => {
    expect(toGenerationEvent({ event: 'delta', data: '{"text":"hi"}', id: '3' })).toEqual({
      event: 'delta',
      data: { text: 'hi' },
    });
    expect(
      toGenerationEvent({ event: 'end', data: '{"message_id":"m","status":"stopped"}', id: '9' }),
    ).toMatchObject({ event: 'end', data: { status: 'stopped' } });
  });

  it('skips unknown events and malformed data', () => {
    expect(toGenerationEvent({ event: 'message', data: '{}', id: '' })).toBeNull();
    expect(toGenerationEvent({ event: 'delta', data: 'not json', id: '' })).toBeNull();
    expect(toGenerationEvent({ event: 'delta', data: '{"text":3}', id: '' })).toBeNull();
    expect(toGenerationEvent({ event: 'start', data: '[]', id: '' })).toBeNull();
    expect(toGenerationEvent({ event: 'snapshot', data: '{}', id: '' })).toBeNull();
  });
});

describe('readGeneration', () => {
  it('reads events split at any byte, with their sequence numbers', async () => {
    const text =
      frame(1, 'delta', { text: 'Grüße ' }) + ': keep-alive\n\n' + frame(2, 'delta', { text: '✓' }) +
      frame(0, 'snapshot', { message: { id: 'm' } });
    const bytes = new TextEncoder().encode(text);
    // One byte per chunk: splits UTF-8 sequences and every line.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const b of bytes) c.enqueue(new Uint8Array([b]));
        c.close();
      },
    });
    const seen = [];
    for await (const ev of readGeneration(body)) seen.push(ev);
    expect(seen).toEqual([
      { seq: 1, event: { event: 'delta', data: { text: 'Grüße ' } } },
      { seq: 2, event: { event: 'delta', data: { text: '✓' } } },
      { seq: 0, event: { event: 'snapshot', data: { message: { id: 'm' } } } },
    ]);
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    const response = sseResponse([frame(1, 'delta', { text: 'a' })]);
    controller.abort();
    await expect(async () => {
      for await (const _ of readGeneration(response.body!, controller.signal)) void _;
    }).rejects.toThrow();
  });
});
