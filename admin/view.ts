/** A page of the console: renders into `main`, returns a cleanup for when the admin leaves it. */
export type View = (main: HTMLElement, param: string | undefined) => (() => void) | void;
