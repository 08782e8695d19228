// Admin → Users: the user list and the actions on it. One instance per screen.
import { ApiError } from '../api';
import { adminApi } from '../endpoints';
import type { Role, User, UserUpdate } from '../types';

type UsersClient = Pick<
  typeof adminApi,
  'listUsers' | 'updateUser' | 'resetPassword' | 'deleteUser'
>;

export class AdminUsersStore {
  users = $state<User[]>([]);
  loading = $state(false);
  loadError = $state<ApiError | null>(null);

  readonly pending = $derived(this.users.filter((u) => u.role === 'pending'));

  readonly #client: UsersClient;

  constructor(client: UsersClient = adminApi) {
    this.#client = client;
  }

  async load(signal?: AbortSignal): Promise<void> {
    this.loading = true;
    try {
      this.users = await this.#client.listUsers(undefined, { signal });
      this.loadError = null;
    } catch (err) {
      if (signal?.aborted) return;
      if (!(err instanceof ApiError)) throw err;
      this.loadError = err;
    } finally {
      if (!signal?.aborted) this.loading = false;
    }
  }

  async update(userId: string, changes: UserUpdate): Promise<User> {
    const user = await this.#client.updateUser(userId, changes);
    this.users = this.users.map((u) => (u.id === user.id ? user : u));
    return user;
  }

  approve(userId: string): Promise<User> {
    return this.update(userId, { role: 'user' });
  }

  setRole(userId: string, role: Role): Promise<User> {
    return this.update(userId, { role });
  }

  setDisabled(userId: string, disabled: boolean): Promise<User> {
    return this.update(userId, { disabled });
  }

  async resetPassword(userId: string, password: string): Promise<void> {
    await this.#client.resetPassword(userId, password);
  }

  async remove(userId: string): Promise<void> {
    await this.#client.deleteUser(userId);
    this.users = this.users.filter((u) => u.id !== userId);
  }
}
