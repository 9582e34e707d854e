/** A tiny typed event emitter that runs in browsers and Node alike. */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (...args: any[]) => void;

export class Emitter<M extends { [K in keyof M]: Handler }> {
  private readonly handlers = new Map<keyof M, Set<Handler>>();

  /** Adds a handler; returns `this` for chaining. */
  on<K extends keyof M>(event: K, handler: M[K]): this {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return this;
  }

  /** Removes a handler added with {@link on} (or every handler of `event` without one). */
  off<K extends keyof M>(event: K, handler?: M[K]): this {
    if (handler === undefined) this.handlers.delete(event);
    else this.handlers.get(event)?.delete(handler);
    return this;
  }

  /** Adds a handler that runs once. */
  once<K extends keyof M>(event: K, handler: M[K]): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, wrapper as M[K]);
      (handler as Handler)(...args);
    }) as M[K];
    return this.on(event, wrapper);
  }

  listenerCount(event: keyof M): number {
    return this.handlers.get(event)?.size ?? 0;
  }

  /**
   * Calls every handler. A handler that throws does not disturb the others
   * or the emitter's state: its error is rethrown on a later tick (an
   * uncaught exception, as with Node's EventEmitter).
   */
  protected emit<K extends keyof M>(event: K, ...args: Parameters<M[K]>): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
}
