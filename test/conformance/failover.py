#!/usr/bin/env python3
"""A node dies under Paho clients, as a Paho user sees it.

Three persistent subscribers (MQTT 3.1.1 clean session 0 at QoS 1; MQTT 5
Clean Start 0 with a Session Expiry Interval, at QoS 1 and at QoS 2) are
connected to node A, a publisher on node B sends numbered QoS 2 messages,
and after --kill-at of them this script SIGKILLs A (--kill-pid). Each
subscriber, once its connection is gone, connects to node C with the same
client id. Every message whose PUBCOMP the publisher got must reach every
subscriber, the QoS 2 one exactly once, and each must get its session back
(session present).

Prints one JSON line: per subscriber, what was acknowledged and never
delivered, duplicates, session present, and the seconds from the kill to
its CONNACK on C. Used by test/integration/paho-failover.test.ts.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEADLINE = 60.0


def wait_for(condition, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit(json.dumps({'error': 'timed out waiting for %s' % what}))


def host_port(s):
    host, port = s.rsplit(':', 1)
    return host, int(port)


class Subscriber:
    def __init__(self, version, client_id, topic, qos=1):
        self.version = version
        self.qos = qos
        self.topic = topic
        self.client_id = client_id
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        if version == 5:
            self.c = mqtt.Client(client_id=client_id, protocol=protocol)
        else:
            self.c = mqtt.Client(client_id=client_id, clean_session=False, protocol=protocol)
        self.lock = threading.Lock()
        self.got = {}
        self.connacks = []
        self.disconnected = threading.Event()
        self.subacked = threading.Event()
        self.c.on_connect = self.on_connect
        self.c.on_disconnect = self.on_disconnect
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda *a: self.subacked.set()

    def on_connect(self, client, userdata, flags, rc, properties=None):
        self.connacks.append((time.monotonic(), bool(flags.get('session present')), int(getattr(rc, 'value', rc))))

    def on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnected.set()

    def on_message(self, client, userdata, message):
        with self.lock:
            n = int(message.payload.decode())
            self.got[n] = self.got.get(n, 0) + 1

    def connect(self, address):
        host, port = host_port(address)
        n = len(self.connacks)
        if self.version == 5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = 300
            self.c.connect(host, port, keepalive=10, clean_start=False, properties=p)
        else:
            self.c.connect(host, port, keepalive=10)
        self.c.loop_start()
        wait_for(lambda: len(self.connacks) > n, 'CONNACK of %s' % self.client_id)
        return self.connacks[-1]

    def move_to(self, address):
        """After the kill: the connection to the dead node is gone; connect to the next one."""
        wait_for(self.disconnected.is_set, 'the disconnect of %s' % self.client_id)
        self.c.loop_stop()
        return self.connect(address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--first', required=True, help='host:port of node A, killed')
    ap.add_argument('--publisher', required=True, help='host:port of node B')
    ap.add_argument('--then', required=True, help='host:port of node C')
    ap.add_argument('--kill-pid', type=int, required=True)
    ap.add_argument('--count', type=int, default=600)
    ap.add_argument('--kill-at', type=int, default=200)
    ap.add_argument('--prefix', default='paho-failover')
    args = ap.parse_args()
    topic = '%s/%d' % (args.prefix, os.getpid())

    subs = [
        Subscriber(4, 'paho-fo-v4-%d' % os.getpid(), topic),
        Subscriber(5, 'paho-fo-v5-%d' % os.getpid(), topic),
        # QoS 2 end to end (the publisher too): exactly once, through the failover.
        Subscriber(5, 'paho-fo-v5q2-%d' % os.getpid(), topic, qos=2),
    ]
    for s in subs:
        first = s.connect(args.first)
        if first[2] != 0:
            raise SystemExit(json.dumps({'error': 'CONNACK %d on the first node' % first[2]}))
        s.c.subscribe(topic + '/#', qos=s.qos)
        wait_for(s.subacked.is_set, 'SUBACK')

    pub = mqtt.Client(client_id='paho-fo-pub-%d' % os.getpid(), protocol=mqtt.MQTTv311)
    acked = set()
    pub.on_publish = lambda client, userdata, mid: acked.add(mid)
    host, port = host_port(args.publisher)
    pub.connect(host, port, keepalive=10)
    pub.loop_start()
    wait_for(pub.is_connected, 'the publisher to connect')
    # The subscriptions are routed to B once a probe published there reaches both.
    end = time.monotonic() + DEADLINE
    while not all(-1 in s.got for s in subs):
        if time.monotonic() > end:
            raise SystemExit(json.dumps({'error': 'the subscriptions on A never reached B'}))
        pub.publish(topic + '/probe', '-1', qos=0)
        time.sleep(0.1)

    # Each subscriber connects to C as soon as its connection to A is gone, as a client would.
    moves = [None] * len(subs)

    def move(k):
        moves[k] = subs[k].move_to(args.then)
    movers = [threading.Thread(target=move, args=(k,), daemon=True) for k in range(len(subs))]
    for t in movers:
        t.start()

    mids = {}
    killed_at = None
    for i in range(args.count):
        info = pub.publish(topic + '/m', str(i), qos=2)
        mids[info.mid] = i
        if i == args.kill_at:
            os.kill(args.kill_pid, signal.SIGKILL)
            killed_at = time.monotonic()
        # At most 20 in flight, a few hundred a second: the kill lands mid-stream.
        while sum(1 for m in mids if m not in acked) > 20:
            time.sleep(0.002)
        time.sleep(0.003)
    # Every publish is acknowledged eventually (B stays up); the ones that
    # are not by the deadline are reported, not owed.
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and any(m not in acked for m in mids):
        time.sleep(0.05)
    owed = sorted(mids[m] for m in acked if m in mids)

    for t in movers:
        t.join(DEADLINE)
    if any(m is None for m in moves):
        raise SystemExit(json.dumps({'error': 'a subscriber did not reconnect to C'}))
    report = {'published': args.count, 'acked': len(owed), 'subscribers': []}
    for s, (at, present, rc) in zip(subs, moves):
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            with s.lock:
                if all(n in s.got for n in owed):
                    break
            time.sleep(0.05)
        with s.lock:
            missing = [n for n in owed if n not in s.got]
            twice = sum(1 for v in s.got.values() if v > 1)
        report['subscribers'].append({
            'version': s.version,
            'qos': s.qos,
            'sessionPresent': present,
            'rc': rc,
            'reconnectSeconds': round(at - killed_at, 2),
            'missing': len(missing),
            'firstMissing': missing[:10],
            'duplicates': twice,
        })
        s.c.loop_stop()
        s.c.disconnect()
    pub.loop_stop()
    pub.disconnect()
    print(json.dumps(report))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
