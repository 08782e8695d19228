// Generation streams: the SSE frames of POST /api/chats/{id}/messages, …/regenerate and
// GET /api/generations/{id}/stream, parsed into typed events (see contract.ts).
import { readSse, type SseEvent } from '../sse';
import type { GenerationEvent } from './contract';

export interface SequencedEvent {
  /** The frame's `id:` (the server numbers frames from 1; a snapshot is 0); null if absent. */
  seq: number | null;
  event: GenerationEvent;
}

const KNOWN = new Set(['start', 'delta', 'reasoning', 'snapshot', 'end']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One SSE event as a generation event; null for unknown event types or malformed data (a
 *  newer server may add events; an older client skips them). */
export function toGenerationEvent(ev: SseEvent): GenerationEvent | null {
  if (!KNOWN.has(ev.event)) return null;
  let data: unknown;
  try {
    data = JSON.parse(ev.data);
  } catch {
    return null;
  }
  if (!isObject(data)) return null;
  switch (ev.event) {
    case 'delta':
    case 'reasoning':
      if (typeof data.text !== 'string') return null;
      break;
    case 'start':
      if (!isObject(data.assistant_message) || typeof data.generation_id !== 'string') return null;
      break;
    case 'snapshot':
      if (!isObject(data.message)) return null;
      break;
    case 'end':
      if (typeof data.message_id !== 'string' || typeof data.status !== 'string') return null;
      break;
  }
  return { event: ev.event, data } as GenerationEvent;
}

function seqOf(id: string): number | null {
  return /^\d+$/.test(id) ? Number(id) : null;
}

/** The typed events of a generation stream, with their sequence numbers. */
export async function* readGeneration(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<SequencedEvent, void, undefined> {
  for await (const ev of readSse(body, signal)) {
    const event = toGenerationEvent(ev);
    if (event) yield { seq: seqOf(ev.id), event };
  }
}
