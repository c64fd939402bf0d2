import { execFileSync } from 'node:child_process';

function limit(flag: '-Sn' | '-Hn'): number {
  const text = execFileSync('sh', ['-c', `ulimit ${flag}`])
    .toString()
    .trim();
  return text === 'unlimited' ? Infinity : Number(text);
}

/**
 * Checks that this process tree may open `needed` file descriptors. Node raises its own soft
 * RLIMIT_NOFILE to the hard limit at startup (and children inherit it), so the hard limit is what
 * counts; a shell started from here reports the limit in force.
 */
export function ensureFileLimit(needed: number): { soft: number; hard: number } {
  const soft = limit('-Sn');
  const hard = limit('-Hn');
  if (soft < needed) {
    throw new Error(
      `this benchmark needs ${needed} open files per process; ulimit -n is ${soft} (hard ${hard}). ` +
        'Raise the hard limit or pass a smaller --consoles.',
    );
  }
  return { soft, hard };
}
