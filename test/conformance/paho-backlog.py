#!/usr/bin/env python3
"""A Paho QoS 2 publisher whose node dies while it has a backlog.

Eclipse Paho's Python client 1.6 resends everything it holds at once after a
reconnect, ignoring its own in-flight limit (_messages_reconnect_reset_out),
so a publisher that queued more than the broker's Receive Maximum while its
node was dying sends more unreleased QoS 2 PUBLISHes than that on the next
node. broker-ha holds the excess and hands it on as PUBRELs free the window
(mqtt.max_inflight_excess); refusing it (DISCONNECT 0x93) left Paho in a loop
it never got out of.

A persistent MQTT 5 publisher (Paho's default in-flight limit, 20) on node A
publishes --count QoS 2 messages without reading (nothing is acknowledged), A
is SIGKILLed (--kill-pid), and the publisher connects to node B with its
session. A QoS 2 subscriber on B must get every message exactly once, and the
publisher its PUBCOMP for every one, on that one connection.

Prints one JSON line: {acked, delivered, duplicates, connacks, disconnects}.
Used by test/integration/paho-backlog.test.ts.
"""
import argparse
import json
import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEADLINE = 40.0


def host_port(s):
    host, port = s.rsplit(':', 1)
    return host, int(port)


def wait_for(condition, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.01)
    raise TimeoutError(what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--first', required=True, help='node A host:port (killed)')
    ap.add_argument('--then', required=True, help='node B host:port')
    ap.add_argument('--kill-pid', type=int, required=True)
    ap.add_argument('--count', type=int, default=300)
    args = ap.parse_args()
    topic = 'paho-backlog/%d' % os.getpid()
    lock = threading.Lock()
    got = {}
    acked = set()
    connacks = []
    disconnects = []

    sub = mqtt.Client(client_id='backlog-sub-%d' % os.getpid(), protocol=mqtt.MQTTv5)
    subscribed = threading.Event()

    def on_message(c, u, msg):
        with lock:
            got[msg.payload.decode()] = got.get(msg.payload.decode(), 0) + 1
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(*host_port(args.then))
    sub.loop_start()
    sub.subscribe(topic, 2)
    if not subscribed.wait(10):
        raise SystemExit(json.dumps({'error': 'no SUBACK'}))

    pub = mqtt.Client(client_id='backlog-pub-%d' % os.getpid(), protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(20)
    mids = {}

    def on_publish(c, u, mid):
        with lock:
            if mid in mids:
                acked.add(mids[mid])
    pub.on_publish = on_publish
    pub.on_connect = lambda c, u, flags, rc, props=None: connacks.append((flags.get('session present'), str(rc)))
    pub.on_disconnect = lambda c, u, rc, props=None: disconnects.append(str(rc))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 300
    pub.connect(*host_port(args.first), clean_start=False, properties=props)
    wait_for(lambda: pub.loop(0.05) == 0 and connacks, 'CONNACK on A')
    # Published without reading: 20 go out, the rest wait in Paho's queue.
    for i in range(args.count):
        info = pub.publish(topic, str(i), qos=2)
        mids[info.mid] = str(i)
    os.kill(args.kill_pid, signal.SIGKILL)
    # Paho finds its connection gone (or not), and connects to B.
    try:
        pub.loop(0.5)
    except Exception:
        pass
    pub.connect(*host_port(args.then), clean_start=False, properties=props)
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and len(acked) < args.count:
        if pub.loop(0.05) != 0:
            break  # a second connection would show in connacks: the check below fails
    try:
        wait_for(lambda: len(got) >= args.count, 'every message delivered', timeout=10)
    except TimeoutError:
        pass
    pub.disconnect()
    sub.loop_stop()
    sub.disconnect()
    with lock:
        print(json.dumps({
            'acked': len(acked),
            'delivered': len(got),
            'duplicates': sum(1 for n in got.values() if n > 1),
            'connacks': connacks,
            'disconnects': disconnects,
        }))


if __name__ == '__main__':
    main()
