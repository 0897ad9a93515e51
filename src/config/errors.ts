import { SluiceError } from '../errors.ts';

/** A config file or setting that cannot be used; the message names the path. */
export class ConfigError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_CONFIG', message);
  }
}
