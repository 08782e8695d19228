import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api';
import type { User, UserUpdate } from '../types';
import { AdminUsersStore } from './adminUsers.svelte';

const user = (id: string, extra: Partial<User> = {}): User => ({
  id,
  email: `${id}@example.com`,
  display_name: '',
  role: 'user',
  disabled: false,
  limits: {},
  created_at: '2030-01-01T00:00:00+00:00',
  last_login_at: null,
  ...extra,
});

function client(users: User[]) {
  return {
    listUsers: vi.fn(async () => users),
    updateUser: vi.fn(async (id: string, changes: UserUpdate) => ({
      ...users.find((u) => u.id === id)!,
      ...changes,
      limits: {},
    })),
    resetPassword: vi.fn(async () => ({ ok: true as const })),
    deleteUser: vi.fn(async () => ({ ok: true as const })),
  };
}

describe('AdminUsersStore', () => {
  const people = [user('root', { role: 'admin' }), user('p1', { role: 'pending' }), user('u1')];

  it('loads users and derives the pending ones', async () => {
    const store = new AdminUsersStore(client(people));
    await store.load();
    expect(store.users).toHaveLength(3);
    expect(store.pending.map((u) => u.id)).toEqual(['p1']);
  });

  it('approve makes a pending user a user', async () => {
    const c = client(people);
    const store = new AdminUsersStore(c);
    await store.load();
    await store.approve('p1');
    expect(c.updateUser).toHaveBeenCalledWith('p1', { role: 'user' });
    expect(store.users.find((u) => u.id === 'p1')?.role).toBe('user');
    expect(store.pending).toEqual([]);
  });

  it('setRole and setDisabled send just that change', async () => {
    const c = client(people);
    const store = new AdminUsersStore(c);
    await store.load();
    await store.setRole('u1', 'admin');
    await store.setDisabled('u1', true);
    expect(c.updateUser.mock.calls).toEqual([
      ['u1', { role: 'admin' }],
      ['u1', { disabled: true }],
    ]);
    expect(store.users.find((u) => u.id === 'u1')).toMatchObject({ disabled: true });
  });

  it('a refused change (last admin) leaves the list as it was', async () => {
    const c = client(people);
    c.updateUser.mockRejectedValueOnce(new ApiError(409, 'last_admin', 'no'));
    const store = new AdminUsersStore(c);
    await store.load();
    await expect(store.setRole('root', 'user')).rejects.toMatchObject({ code: 'last_admin' });
    expect(store.users.find((u) => u.id === 'root')?.role).toBe('admin');
  });

  it('remove drops the user only after the server agrees', async () => {
    const c = client(people);
    const store = new AdminUsersStore(c);
    await store.load();
    c.deleteUser.mockRejectedValueOnce(new ApiError(404, 'user_not_found', 'gone'));
    await expect(store.remove('u1')).rejects.toBeInstanceOf(ApiError);
    expect(store.users).toHaveLength(3);
    await store.remove('u1');
    expect(store.users.map((u) => u.id)).toEqual(['root', 'p1']);
  });

  it('resetPassword passes the password through', async () => {
    const c = client(people);
    const store = new AdminUsersStore(c);
    await store.resetPassword('u1', 'new password');
    expect(c.resetPassword).toHaveBeenCalledWith('u1', 'new password');
  });
});
