// Test helpers: SSE responses built from frames, optionally fed by the test as it goes.
import type { Message } from '../lib/chat/contract';

const encoder = new TextEncoder();

export function frame(seq: number, event: string, data: unknown): string {
  return `id: ${seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function sseResponse(frames: string[]): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const f of frames) controller.enqueue(encoder.encode(f));
      controller.close();
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
}

/** A response whose frames the test pushes one at a time. */
export function liveResponse(): { response: Response; push: (text: string) => void; close: () => void } {
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      ctrl = controller;
    },
  });
  return {
    response: new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    push: (text) => ctrl.enqueue(encoder.encode(text)),
    close: () => ctrl.close(),
  };
}

export function message(id: string, extra: Partial<Message> = {}): Message {
  return {
    id,
    chat_id: 'chat1',
    parent_id: null,
    role: 'user',
    content: `text of ${id}`,
    reasoning: null,
    attachments: null,
    model: null,
    status: 'complete',
    error: null,
    stop_reason: null,
    usage: null,
    ttft_ms: null,
    duration_ms: null,
    created_at: `2030-01-01T00:00:${id.padStart(2, '0').slice(-2)}+00:00`,
    updated_at: '2030-01-01T00:00:00+00:00',
    ...extra,
  };
}

/** Wait until `check` passes (microtask/macrotask polling, for stream reading loops). */
export async function until(check: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}
