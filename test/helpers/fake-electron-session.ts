import { EventEmitter } from 'node:events';

/** A stand-in for an Electron Session: records the permission handlers the shell installs. */
export class FakeSession extends EventEmitter {
  request: ((c: unknown, permission: string, callback: (granted: boolean) => void) => void) | undefined;
  check: ((c: unknown, permission: string) => boolean) | undefined;
  device: (() => boolean) | undefined;
  setPermissionRequestHandler(h: FakeSession['request']) {
    this.request = h;
  }
  setPermissionCheckHandler(h: FakeSession['check']) {
    this.check = h;
  }
  setDevicePermissionHandler(h: FakeSession['device']) {
    this.device = h;
  }
}
