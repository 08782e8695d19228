// The message tree of one chat: messages link to their parent; siblings (same parent, in
// creation order) are the branches the user flips through with ‹ 2/3 ›. Pure functions.
import type { Message } from './contract';

export interface MessageIndex {
  byId: Map<string, Message>;
  /** Children per parent id ('' for roots), oldest first. */
  children: Map<string, Message[]>;
}

const key = (parentId: string | null) => parentId ?? '';

function byCreation(a: Message, b: Message): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function indexMessages(messages: readonly Message[]): MessageIndex {
  const byId = new Map<string, Message>();
  const children = new Map<string, Message[]>();
  for (const m of messages) byId.set(m.id, m);
  for (const m of byId.values()) {
    const list = children.get(key(m.parent_id));
    if (list) list.push(m);
    else children.set(key(m.parent_id), [m]);
  }
  for (const list of children.values()) list.sort(byCreation);
  return { byId, children };
}

/** Root first, down to `leafId`; [] when the leaf is unknown. */
export function branchTo(index: MessageIndex, leafId: string | null): Message[] {
  const path: Message[] = [];
  const seen = new Set<string>();
  let node = leafId ? index.byId.get(leafId) : undefined;
  while (node && !seen.has(node.id)) {
    seen.add(node.id);
    path.push(node);
    node = node.parent_id ? index.byId.get(node.parent_id) : undefined;
  }
  return path.reverse();
}

/** The message's siblings (itself included), oldest first, and its position among them. */
export function siblingsOf(
  index: MessageIndex,
  message: Message,
): { siblings: Message[]; position: number } {
  const siblings = index.children.get(key(message.parent_id)) ?? [message];
  return { siblings, position: Math.max(0, siblings.findIndex((m) => m.id === message.id)) };
}

/** The leaf reached from `messageId` by always taking the newest child: what a branch switch
 *  shows (the latest conversation under the chosen message). */
export function latestLeaf(index: MessageIndex, messageId: string): string {
  let id = messageId;
  const seen = new Set<string>();
  for (;;) {
    seen.add(id);
    const kids = index.children.get(id);
    const next = kids?.[kids.length - 1];
    if (!next || seen.has(next.id)) return id;
    id = next.id;
  }
}

/** The leaf to show after moving `message` `delta` places among its siblings; null when that
 *  would leave the list. */
export function switchBranch(index: MessageIndex, message: Message, delta: number): string | null {
  const { siblings, position } = siblingsOf(index, message);
  const target = siblings[position + delta];
  return target ? latestLeaf(index, target.id) : null;
}

/** Tokens per second of an answer: output tokens over the time after the first token. */
export function tokensPerSecond(message: Message): number | null {
  const out = message.usage?.output_tokens;
  if (!out || message.duration_ms === null) return null;
  const ms = message.duration_ms - (message.ttft_ms ?? 0);
  if (ms <= 0) return null;
  return out / (ms / 1000);
}
