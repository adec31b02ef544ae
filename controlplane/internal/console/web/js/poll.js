// every runs fn now and then every ms until signal aborts; a tab in the background
// is not polled, and catches up as soon as it is shown again. fn's own errors are
// its to show: a failed round does not stop the next.
export function every(ms, fn, signal) {
  let timer = 0;
  let running = false;
  const tick = async () => {
    if (signal.aborted || running) return;
    if (document.hidden) {
      timer = setTimeout(tick, ms);
      return;
    }
    running = true;
    try {
      await fn();
    } catch (e) {
      if (e.name !== 'AbortError') console.error(e);
    } finally {
      running = false;
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  const wake = () => {
    if (!document.hidden) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', wake);
  signal.addEventListener('abort', () => {
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', wake);
  });
  tick();
}
