import { describe, expect, it } from 'vitest';
import { Confirmer } from './confirm.svelte';

const question = { title: 'Delete?', message: 'Really?', confirmLabel: 'Delete', danger: true };

describe('Confirmer', () => {
  it('resolves with the answer and closes', async () => {
    const c = new Confirmer();
    const answer = c.ask(question);
    expect(c.current).toMatchObject(question);
    c.answer(true);
    await expect(answer).resolves.toBe(true);
    expect(c.current).toBeNull();
  });

  it('a second question answers the first "no"', async () => {
    const c = new Confirmer();
    const first = c.ask(question);
    const second = c.ask({ ...question, title: 'Other?' });
    await expect(first).resolves.toBe(false);
    expect(c.current?.title).toBe('Other?');
    c.answer(false);
    await expect(second).resolves.toBe(false);
  });

  it('answering with nothing open is harmless', () => {
    const c = new Confirmer();
    expect(() => c.answer(true)).not.toThrow();
  });
});
