#!/usr/bin/env python3
"""Eclipse Paho Python 1.6.1 sends a QoS 2 PUBLISH again after its PUBREL.

A reproducer of the client defect behind the QoS 2 duplicates that
scripts/failover.py showed with Debian's python3-paho-mqtt (docs/known-gaps.md).
Paho's reconnect() calls _messages_reconnect_reset_out before it even opens
the socket, and that reset is not idempotent:

    wait_for_pubcomp -> resend_pubrel        (first reset: right)
    resend_pubrel    -> publish, dup as was  (second reset: wrong)

_handle_connack moves resend_pubrel back to wait_for_pubcomp only when a
CONNACK 0 arrives and its resend loop reaches the message. So a connection
attempt that gets no CONNACK 0 (a refused TCP connect to a restarting node, a
CONNACK refusal, a timeout, or the loop cut short when the socket closes under
it) followed by a good one makes Paho send a message whose PUBREL the broker
already processed as a PUBLISH again, DUP 0 if it never needed a resend
before. MQTT 5 section 4.3.3 forbids that ("MUST NOT re-send the PUBLISH once
it has sent the corresponding PUBREL"); to any broker it is a new message
under a released packet identifier, and is delivered again.

A tiny broker on loopback answers PUBREC, takes the PUBREL and cuts the
connection before its PUBCOMP; Paho then tries a port nobody listens on, and
comes back. Prints what the broker read on the second connection:
PUBREL 1 (right) without the failed attempt, PUBLISH 1 with it.

  /usr/bin/python3 test/conformance/paho-resend-after-pubrel.py
"""
import socket
import threading

import paho.mqtt.client as mqtt

NAMES = {3: 'PUBLISH', 6: 'PUBREL', 12: 'PINGREQ', 14: 'DISCONNECT'}


def broker(srv, seen, connections=2):
    for n in range(connections):
        c, _ = srv.accept()
        buf = b''

        def packet():
            nonlocal buf
            while True:
                if len(buf) >= 2 and len(buf) >= 2 + buf[1]:  # short packets only
                    p, buf = buf[:2 + buf[1]], buf[2 + buf[1]:]
                    return p
                d = c.recv(4096)
                if not d:
                    return None
                buf += d
        packet()  # CONNECT
        c.sendall(bytes([0x20, 2, 1 if n else 0, 0]))  # CONNACK, session present from the second on
        while True:
            p = packet()
            if p is None:
                break
            kind = p[0] >> 4
            mid = int.from_bytes(p[4 + p[3]:6 + p[3]] if kind == 3 else p[2:4], 'big')
            seen.append((n, NAMES.get(kind, kind), mid, 'DUP' if p[0] & 8 else ''))
            if kind == 3:
                c.sendall(bytes([0x50, 2]) + mid.to_bytes(2, 'big'))  # PUBREC
            elif kind == 6 and n == 0:
                break  # the PUBREL is taken; the connection ends before PUBCOMP
            elif kind == 6:
                c.sendall(bytes([0x70, 2]) + mid.to_bytes(2, 'big'))  # PUBCOMP
        c.close()


def run(failed_attempt):
    srv = socket.socket()
    srv.bind(('127.0.0.1', 0))
    srv.listen(5)
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    seen = []
    threading.Thread(target=broker, args=(srv, seen), daemon=True).start()
    c = mqtt.Client(client_id='resend-after-pubrel', clean_session=False, protocol=mqtt.MQTTv311)
    c.connect('127.0.0.1', srv.getsockname()[1])
    for _ in range(10):
        c.loop(0.05)
    c.publish('t', 'one message', qos=2)
    for _ in range(30):
        c.loop(0.05)
    if failed_attempt:
        try:
            c.connect('127.0.0.1', closed_port)
        except OSError:
            pass
    c.connect('127.0.0.1', srv.getsockname()[1])
    for _ in range(30):
        c.loop(0.05)
    srv.close()
    return [s[1:] for s in seen if s[0] == 1]


if __name__ == '__main__':
    print('after the cut, straight back:           ', run(False))
    print('after the cut, a refused attempt, back: ', run(True))
