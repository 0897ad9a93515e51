// Keeps an HTTP/2 server session honest about being alive:
//  - the client's connection preface and SETTINGS must arrive within handshakeTimeoutMs;
//  - a session with no open stream for idleTimeoutMs gets GOAWAY and is closed;
//  - a session that has received nothing for a handshake period is sent a PING, and closed when
//    no ACK has come by the next check. This also ends sessions nghttp2 has terminated after a
//    connection error (a DATA frame on stream 0, a bad SETTINGS value, ...): it sends GOAWAY and
//    stops reading, but node:http2 keeps the socket open and says nothing, so the PING it can
//    no longer answer is how the session is found and closed.
import type http2 from 'node:http2';
import type { ListenerLimits } from '../net/connection-limits.ts';

/** After GOAWAY, how long a closing session gets to finish before it is cut. */
const CLOSE_GRACE_MS = 1000;

export function watchHttp2Session(session: http2.ServerHttp2Session, limits: ListenerLimits): void {
  const report = limits.onRefused ?? (() => undefined);
  const cut = (): void => session.destroy();
  let settled = false;
  let openStreams = 0;
  let idleSince = Date.now();
  let lastBytesRead = -1;
  let pingOutstanding = false;

  const handshake = setTimeout(() => {
    if (settled || session.destroyed) return;
    report('handshake_timeout');
    cut();
  }, limits.handshakeTimeoutMs);
  handshake.unref();
  session.once('remoteSettings', () => {
    settled = true;
    clearTimeout(handshake);
  });
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    openStreams++;
    stream.once('close', () => {
      if (--openStreams === 0) idleSince = Date.now();
    });
  });

  const check = (): void => {
    if (session.destroyed || !settled) return;
    if (pingOutstanding) {
      report('unresponsive');
      cut();
      return;
    }
    if (openStreams === 0 && Date.now() - idleSince >= limits.idleTimeoutMs && !session.closed) {
      report('idle_timeout');
      session.close();
      setTimeout(cut, CLOSE_GRACE_MS).unref();
      return;
    }
    const bytesRead = session.socket?.bytesRead ?? 0;
    if (bytesRead !== lastBytesRead) {
      lastBytesRead = bytesRead;
      return;
    }
    // Silent for a whole period: is anyone there (and is nghttp2 still reading)?
    try {
      pingOutstanding = session.ping((err) => {
        if (err === null) pingOutstanding = false;
      });
    } catch {
      pingOutstanding = true;
    }
  };
  const period = Math.min(limits.handshakeTimeoutMs, limits.idleTimeoutMs);
  const ticker = setInterval(check, period);
  ticker.unref();
  session.once('close', () => {
    clearTimeout(handshake);
    clearInterval(ticker);
  });
}
