// One confirmation dialog for the whole app: `if (await confirm({...})) doIt()`.
// <ConfirmHost> renders `confirmer.current` as a modal <dialog>.

export interface ConfirmRequest {
  title: string;
  message: string;
  confirmLabel: string;
  /** Style the confirm button as destructive. */
  danger?: boolean;
}

interface Pending extends ConfirmRequest {
  resolve: (ok: boolean) => void;
}

export class Confirmer {
  current = $state<Pending | null>(null);

  ask(request: ConfirmRequest): Promise<boolean> {
    // A new question supersedes an unanswered one (answered "no").
    this.current?.resolve(false);
    return new Promise<boolean>((resolve) => {
      this.current = { ...request, resolve };
    });
  }

  answer(ok: boolean): void {
    const pending = this.current;
    this.current = null;
    pending?.resolve(ok);
  }
}

export const confirmer = new Confirmer();

export function confirm(request: ConfirmRequest): Promise<boolean> {
  return confirmer.ask(request);
}
