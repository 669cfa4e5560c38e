#!/usr/bin/env python3
"""MQTT 5 conformance rows, driven by client stacks other than mqtt.js.

Each row of the MQTT 5 table in docs/mqtt.md is a check here, written once
per client stack that can express it:

  paho       Eclipse Paho's Python client (Debian python3-paho-mqtt, 1.6 or 2.x)
  mosquitto  the mosquitto_pub / mosquitto_sub command line clients

Usage: matrix.py --stack paho|mosquitto --hosts H1[,H2,H3] [--port 1883] [--rows id,...]

Every new connection of a row goes to the next host of --hosts, so with
three nodes consecutive connections land on different nodes. The output is
one JSON line per row: {"row", "stack", "ok", "detail", "ms"}; a row the
stack cannot express is not printed. The exit status is 0 when the run
finished, whatever the rows say (test/integration/conformance-matrix.test.ts
judges them).

Waits are for conditions, with deadlines. A check that something does NOT
happen waits for a later event on the same path first (a barrier) and then
a short quiet window, QUIET seconds.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

QUIET = 0.5
DEADLINE = 8.0
PROBE = b'\x00probe'

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError:  # the paho stack is then reported absent
    mqtt = None


class Failed(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def wait_for(condition, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed('timed out waiting for ' + what)
        time.sleep(0.01)


def wait_until(seconds):
    """Time itself is the condition (an expiry or a delay has to pass)."""
    wait_for(lambda: time.monotonic() >= seconds, 'time to pass', timeout=seconds - time.monotonic() + 1)


def quiet():
    time.sleep(QUIET)


class Row:
    """One row's context: a unique topic prefix, and hosts in turn for its connections."""

    def __init__(self, hosts, port, index, name):
        self.hosts = hosts
        self.port = port
        self.turn = index
        self.prefix = 'cm/%s/%s' % (name, uuid.uuid4().hex[:8])
        self.lock = threading.Lock()

    def next_host(self):
        with self.lock:
            host = self.hosts[self.turn % len(self.hosts)]
            self.turn += 1
            return host

    def topic(self, *parts):
        return '/'.join((self.prefix,) + parts)

    def client_id(self, name):
        return '%s-%s' % (name, uuid.uuid4().hex[:10])


# ---- Eclipse Paho ----------------------------------------------------------------------------

def props(packet_type, **values):
    p = Properties(packet_type)
    for key, value in values.items():
        setattr(p, key, value)
    return p


def as_dict(properties):
    return {} if properties is None else properties.json()


class Paho:
    """A Paho v5 client with its events recorded; every wait has a deadline."""

    def __init__(self, row, client_id=''):
        self.row = row
        self.messages = []
        self.probes = set()
        self.connacks = []
        self.subacks = {}
        self.unsubacks = {}
        self.acked = set()
        self.disconnects = []
        kwargs = {'client_id': client_id, 'protocol': mqtt.MQTTv5}
        if hasattr(mqtt, 'CallbackAPIVersion'):
            kwargs['callback_api_version'] = mqtt.CallbackAPIVersion.VERSION1
        self.c = mqtt.Client(**kwargs)
        self.c.on_connect = lambda c, u, flags, rc, p=None: self.connacks.append((flags, rc, as_dict(p)))
        self.c.on_message = self._message
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.__setitem__(mid, [int(r.value) for r in rcs])
        self.c.on_unsubscribe = lambda c, u, mid, p=None, rcs=None: self.unsubacks.__setitem__(mid, True)
        self.c.on_publish = lambda c, u, mid: self.acked.add(mid)
        self.c.on_disconnect = self._disconnect

    def _message(self, client, userdata, m):
        if m.payload.startswith(PROBE):
            self.probes.add(m.payload)
            return
        self.messages.append({'topic': m.topic, 'payload': m.payload, 'qos': m.qos, 'retain': bool(m.retain),
                              'props': as_dict(getattr(m, 'properties', None))})

    def _disconnect(self, client, userdata, rc, properties=None):
        self.disconnects.append(getattr(rc, 'value', rc))

    def connect(self, clean_start=True, keepalive=60, will=None, **connect_props):
        if will is not None:
            self.c.will_set(will['topic'], will.get('payload', b''), will.get('qos', 0), will.get('retain', False),
                            will.get('properties'))
        p = props(PacketTypes.CONNECT, **connect_props) if connect_props else None
        self.host = self.row.next_host()
        self.c.connect(self.host, self.row.port, keepalive=keepalive, clean_start=clean_start, properties=p)
        self.c.loop_start()
        flags, rc, cprops = wait_for(lambda: self.connacks and self.connacks[-1], 'CONNACK')
        return {'session_present': bool(flags.get('session present')), 'rc': int(getattr(rc, 'value', rc)), 'props': cprops}

    def subscribe(self, topic, qos=1, sid=None, **options):
        sub_props = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sid) if sid is not None else None
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=sub_props)
        else:
            rc, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos, **options), properties=sub_props)
        return wait_for(lambda: self.subacks.get(mid), 'SUBACK')

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        wait_for(lambda: self.unsubacks.get(mid), 'UNSUBACK')

    def publish(self, topic, payload, qos=1, retain=False, wait=True, **publish_props):
        p = props(PacketTypes.PUBLISH, **publish_props) if publish_props else None
        info = self.c.publish(topic, payload, qos, retain, properties=p)
        if wait and qos > 0:
            wait_for(lambda: info.mid in self.acked, 'PUBACK/PUBCOMP of %s' % topic)
        return info

    def wait_messages(self, n, what='messages', timeout=DEADLINE):
        wait_for(lambda: len(self.messages) >= n, '%d %s (have %d)' % (n, what, len(self.messages)), timeout)
        return self.messages

    def payloads(self):
        return [m['payload'].decode() for m in self.messages]

    def disconnect(self, **disconnect_props):
        p = props(PacketTypes.DISCONNECT, **disconnect_props) if disconnect_props else None
        n = len(self.disconnects)
        self.c.disconnect(properties=p)
        wait_for(lambda: len(self.disconnects) > n, 'the disconnect')
        self.c.loop_stop()

    def kill(self):
        """Drops the connection without DISCONNECT, as a crashed client."""
        self.c.loop_stop()
        self.c.socket().close()

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def routed(row, sub, topic, pub=None):
    """
    Waits until a publisher's node routes `topic` to the subscriber's (in a
    cluster, routes reach the other nodes after SUBACK), then until the
    subscriber has the last probe sent: no probe is left on its way to
    disturb what the row does next.
    """
    own = pub is None
    if own:
        pub = Paho(row)
        pub.connect()
    sent = []
    try:
        def probe():
            sent.append(PROBE + str(len(sent)).encode())
            pub.publish(topic, sent[-1], qos=1)
            return sub.probes

        wait_for(probe, 'a route to ' + topic)
        wait_for(lambda: sent[-1] in sub.probes, 'the last probe')
    finally:
        if own:
            pub.close()


PAHO_ROWS = {}


def paho_row(name):
    def register(fn):
        PAHO_ROWS[name] = fn
        return fn
    return register


@paho_row('connect')
def paho_connect(row):
    c = Paho(row)
    try:
        ack = c.connect()
        check(ack['rc'] == 0, 'CONNACK %s' % ack['rc'])
        check(ack['props'].get('AssignedClientIdentifier'), 'no Assigned Client Identifier for an empty client id')
        check(not ack['session_present'], 'session present on a clean start')
    finally:
        c.close()


@paho_row('qos')
def paho_qos(row):
    c = Paho(row, row.client_id('qos'))
    try:
        c.connect()
        t = row.topic('a')
        check(c.subscribe(t, qos=2) == [2], 'SUBACK')
        for qos in (0, 1, 2):
            c.publish(t, 'q%d' % qos, qos=qos, wait=False)
        c.wait_messages(3)
        check(sorted((m['payload'].decode(), m['qos']) for m in c.messages) == [('q0', 0), ('q1', 1), ('q2', 2)],
              'got %s' % c.messages)
    finally:
        c.close()


@paho_row('retained')
def paho_retained(row):
    pub, a, b = Paho(row), Paho(row), Paho(row)
    t = row.topic('r')
    try:
        pub.connect()
        pub.publish(t, 'first', qos=1, retain=True)
        pub.publish(t, 'second', qos=1, retain=True)
        a.connect()
        a.subscribe(t, qos=1)
        m = a.wait_messages(1)[0]
        check((m['payload'], m['retain'], m['qos']) == (b'second', True, 1), 'retained %s' % m)
        pub.publish(t, '', qos=1, retain=True)
        b.connect()
        b.subscribe(t, qos=1)
        routed(row, b, t, pub)
        pub.publish(t, 'live', qos=1)
        b.wait_messages(1)
        check(b.payloads() == ['live'], 'a cleared topic still sent %s' % b.payloads())
    finally:
        for c in (pub, a, b):
            c.close()


@paho_row('retain-handling')
def paho_retain_handling(row):
    pub, c = Paho(row), Paho(row)
    try:
        pub.connect()
        for qos, name in enumerate(('x', 'y', 'z')):
            pub.publish(row.topic(name), 'q%d' % qos, qos=max(qos, 1), retain=True)
        c.connect()
        f = row.topic('+')
        c.subscribe(f, qos=2, retainHandling=1)
        c.wait_messages(3, 'retained messages (rh 1, new)')
        c.subscribe(f, qos=2, retainHandling=1)
        c.subscribe(row.topic('barrier', '#'), qos=2, retainHandling=2)
        c.subscribe(f, qos=2, retainHandling=2)
        c.subscribe(f, qos=2, retainHandling=0)
        c.wait_messages(6, 'retained messages (rh 0, again)')
        quiet()
        check(len(c.messages) == 6, 'rh 1 or 2 on an existing subscription sent retained messages: %d' % len(c.messages))
    finally:
        pub.close()
        c.close()


@paho_row('retain-as-published')
def paho_rap(row):
    pub, keep, clear = Paho(row), Paho(row), Paho(row)
    t = row.topic('rap')
    try:
        pub.connect()
        keep.connect()
        clear.connect()
        keep.subscribe(t, qos=1, retainAsPublished=True)
        clear.subscribe(t, qos=1)
        routed(row, keep, t, pub)
        routed(row, clear, t, pub)
        pub.publish(t, 'r', qos=1, retain=True)
        check(keep.wait_messages(1)[0]['retain'] is True, 'retain as published: flag lost')
        check(clear.wait_messages(1)[0]['retain'] is False, 'retain flag kept without retain as published')
        pub.publish(t, '', qos=1, retain=True)
    finally:
        for c in (pub, keep, clear):
            c.close()


@paho_row('no-local')
def paho_no_local(row):
    me, other = Paho(row), Paho(row)
    t = row.topic('nl')
    try:
        me.connect()
        other.connect()
        me.subscribe(t, qos=1, noLocal=True)
        routed(row, me, t, other)
        me.publish(t, 'own', qos=1)
        other.publish(t, 'theirs', qos=1)
        me.wait_messages(1)
        quiet()
        check(me.payloads() == ['theirs'], 'no-local: got %s' % me.payloads())
    finally:
        me.close()
        other.close()


@paho_row('will')
def paho_will(row):
    watcher, crash, polite = Paho(row), Paho(row), Paho(row)
    t = row.topic('will')
    will_props = props(PacketTypes.WILLMESSAGE, WillDelayInterval=0, ContentType='text/plain', UserProperty=('why', 'gone'))
    try:
        watcher.connect()
        watcher.subscribe(row.topic('#'), qos=1)
        routed(row, watcher, t)
        polite.connect(will={'topic': t, 'payload': b'polite', 'qos': 1, 'properties': will_props})
        polite.disconnect()
        crash.connect(will={'topic': t, 'payload': b'crash', 'qos': 1, 'properties': will_props})
        crash.kill()
        m = watcher.wait_messages(1, 'the will')[0]
        check(not watcher.disconnects, 'the will broke the subscriber (Will Delay Interval on a PUBLISH?)')
        check(m['payload'] == b'crash', 'will %s (a clean DISCONNECT must not send it)' % m['payload'])
        check('WillDelayInterval' not in m['props'], 'Will Delay Interval forwarded')
        check(m['props'].get('ContentType') == 'text/plain' and m['props'].get('UserProperty') == [('why', 'gone')],
              'will properties %s' % m['props'])
    finally:
        watcher.close()


@paho_row('will-delay')
def paho_will_delay(row):
    watcher, late, back = Paho(row), Paho(row, row.client_id('late')), Paho(row, row.client_id('back'))
    t = row.topic('wd')
    delayed = props(PacketTypes.WILLMESSAGE, WillDelayInterval=1)
    try:
        watcher.connect()
        watcher.subscribe(row.topic('#'), qos=1)
        routed(row, watcher, t)
        late.connect(will={'topic': t, 'payload': b'late', 'qos': 1, 'properties': delayed}, SessionExpiryInterval=10)
        back.connect(will={'topic': t, 'payload': b'back', 'qos': 1, 'properties': delayed}, SessionExpiryInterval=10)
        dropped = time.monotonic()
        late.kill()
        back.kill()
        again = Paho(row, back.c._client_id.decode())
        again.connect(clean_start=False, SessionExpiryInterval=10)
        watcher.wait_messages(1, 'the delayed will')
        took = time.monotonic() - dropped
        check(took >= 0.9, 'will after %.2f s, before its delay' % took)
        quiet()
        check(watcher.payloads() == ['late'], 'wills %s (a reconnect within the delay cancels it)' % watcher.payloads())
        check('WillDelayInterval' not in watcher.messages[0]['props'], 'Will Delay Interval forwarded')
        again.close()
    finally:
        watcher.close()


def offline_session(row, name, **connect_props):
    """A subscriber with a stored session on `prefix/name/#`, routed, then gone."""
    cid = row.client_id(name)
    s = Paho(row, cid)
    s.connect(clean_start=True, **connect_props)
    s.subscribe(row.topic(name, '#'), qos=2)
    routed(row, s, row.topic(name, 'probe'))
    return cid, s


@paho_row('session-resume')
def paho_session_resume(row):
    cid, s = offline_session(row, 'sr', SessionExpiryInterval=300)
    s.disconnect()
    pub = Paho(row)
    again = None
    try:
        pub.connect()
        for qos in (0, 1, 2):
            pub.publish(row.topic('sr', 'm'), 'q%d' % qos, qos=qos, MessageExpiryInterval=100)
        # Clean Start 0 and no Session Expiry Interval: the session is resumed
        # (the new connection's expiry only governs how it ends).
        again = Paho(row, cid)
        ack = again.connect(clean_start=False)
        check(ack['session_present'], 'session present 0')
        again.wait_messages(2, 'the queued QoS 1 and 2 messages')
        got = sorted(m['payload'].decode() for m in again.messages)
        check(got in (['q1', 'q2'], ['q0', 'q1', 'q2']), 'queued messages %s' % got)
        for m in again.messages:
            remaining = m['props'].get('MessageExpiryInterval')
            check(remaining is not None and 0 < remaining <= 100, 'remaining message expiry %s' % remaining)
    finally:
        pub.close()
        if again is not None:
            again.close()


@paho_row('session-expiry')
def paho_session_expiry(row):
    cid_short, s = offline_session(row, 'short', SessionExpiryInterval=1)
    s.disconnect()
    cid_raised, r = offline_session(row, 'raised', SessionExpiryInterval=1)
    r.disconnect(SessionExpiryInterval=300)
    gone_at = time.monotonic() + 2
    pub = Paho(row)
    try:
        pub.connect()
        pub.publish(row.topic('raised', 'm'), 'kept', qos=1)
        wait_until(gone_at)
        expired = Paho(row, cid_short)
        check(not expired.connect(clean_start=False)['session_present'], 'a session past its expiry is present')
        expired.close()
        kept = Paho(row, cid_raised)
        check(kept.connect(clean_start=False)['session_present'], 'the expiry raised on DISCONNECT was not kept')
        kept.wait_messages(1)
        check(kept.payloads() == ['kept'], 'queued %s' % kept.payloads())
        kept.close()
    finally:
        pub.close()


@paho_row('message-expiry')
def paho_message_expiry(row):
    cid, s = offline_session(row, 'me', SessionExpiryInterval=300)
    s.disconnect()
    pub = Paho(row)
    try:
        pub.connect()
        pub.publish(row.topic('me', 'm'), 'short', qos=1, MessageExpiryInterval=1)
        pub.publish(row.topic('me', 'm'), 'long', qos=2, MessageExpiryInterval=60)
        wait_until(time.monotonic() + 1.2)
        again = Paho(row, cid)
        again.connect(clean_start=False)
        again.wait_messages(1)
        quiet()
        check(again.payloads() == ['long'], 'delivered %s (the short one expired)' % again.payloads())
        remaining = again.messages[0]['props'].get('MessageExpiryInterval')
        check(remaining is not None and remaining < 60, 'remaining expiry %s' % remaining)
        again.close()
    finally:
        pub.close()


@paho_row('topic-alias-in')
def paho_topic_alias_in(row):
    sub, pub = Paho(row), Paho(row)
    t = row.topic('ain')
    try:
        sub.connect()
        ack = pub.connect()
        check(ack['props'].get('TopicAliasMaximum', 0) > 0, 'no Topic Alias Maximum in CONNACK')
        sub.subscribe(t, qos=1)
        routed(row, sub, t, pub)
        pub.publish(t, 'set', qos=1, TopicAlias=1)
        pub.publish('', 'used', qos=1, TopicAlias=1)
        sub.wait_messages(2)
        check([(m['topic'], m['payload']) for m in sub.messages] == [(t, b'set'), (t, b'used')], 'got %s' % sub.messages)
        check(all('TopicAlias' not in m['props'] for m in sub.messages), 'the publisher\'s alias was forwarded')
    finally:
        sub.close()
        pub.close()


@paho_row('topic-alias-out')
def paho_topic_alias_out(row):
    sub, plain, pub = Paho(row), Paho(row), Paho(row)
    t = row.topic('aout', 'x')
    try:
        sub.connect(TopicAliasMaximum=1)
        plain.connect()
        pub.connect()
        sub.subscribe(row.topic('aout', '#'), qos=2)
        plain.subscribe(row.topic('aout', '#'), qos=2)
        # Probes on a topic of their own: the first real PUBLISH takes the alias over, with its topic.
        routed(row, sub, row.topic('aout', 'probe'), pub)
        routed(row, plain, row.topic('aout', 'probe'), pub)
        for qos in (0, 1, 2):
            pub.publish(t, 'q%d' % qos, qos=qos)
        sub.wait_messages(3)
        plain.wait_messages(3)
        aliases = [m['props'].get('TopicAlias') for m in sub.messages]
        check(sub.messages[0]['topic'] == t and aliases[0], 'the first PUBLISH did not set an alias: %s' % sub.messages[0])
        check([m['topic'] for m in sub.messages[1:]] == ['', ''] and aliases[1:] == aliases[:1] * 2,
              'repeated topic without its alias: %s' % sub.messages)
        check(all(m['topic'] == t and 'TopicAlias' not in m['props'] for m in plain.messages),
              'aliases to a client that allows none')
    finally:
        for c in (sub, plain, pub):
            c.close()


@paho_row('subscription-identifiers')
def paho_subscription_identifiers(row):
    c = Paho(row)
    t = row.topic('sid')
    try:
        c.connect()
        c.subscribe(t, qos=1, sid=2)
        c.subscribe(t + '/#', qos=1, sid=3)
        c.publish(t, 'both', qos=1)
        m = c.wait_messages(1)[0]
        ids = m['props'].get('SubscriptionIdentifier')
        check(sorted(ids or []) == [2, 3], 'subscription identifiers %s, want [2, 3]' % ids)
    finally:
        c.close()


def passes_through(row, name, **publish_props):
    sub, pub = Paho(row), Paho(row)
    t = row.topic(name)
    try:
        sub.connect()
        pub.connect()
        sub.subscribe(t, qos=2)
        routed(row, sub, t, pub)
        for qos in (0, 1, 2):
            pub.publish(t, 'q%d' % qos, qos=qos, **publish_props)
        sub.wait_messages(3)
        return sub.messages
    finally:
        sub.close()
        pub.close()


@paho_row('user-properties')
def paho_user_properties(row):
    for m in passes_through(row, 'up', UserProperty=[('a', '2'), ('c', '3')]):
        check(m['props'].get('UserProperty') == [('a', '2'), ('c', '3')], 'user properties %s' % m['props'])


@paho_row('payload-format')
def paho_payload_format(row):
    for m in passes_through(row, 'pf', PayloadFormatIndicator=1, ContentType='My name'):
        check(m['props'].get('PayloadFormatIndicator') == 1 and m['props'].get('ContentType') == 'My name',
              'payload format and content type %s' % m['props'])


@paho_row('request-response')
def paho_request_response(row):
    for m in passes_through(row, 'rr', ResponseTopic=row.topic('reply'), CorrelationData=b'334'):
        check(m['props'].get('ResponseTopic') == row.topic('reply') and m['props'].get('CorrelationData') == b'334'.hex(),
              'response topic and correlation data %s' % m['props'])


@paho_row('overlapping-subscriptions')
def paho_overlapping(row):
    c = Paho(row)
    try:
        c.connect()
        c.subscribe([(row.topic('#'), SubscribeOptions(qos=2)), (row.topic('+'), SubscribeOptions(qos=1))])
        c.publish(row.topic('x'), 'once', qos=2)
        c.wait_messages(1)
        c.publish(row.topic('marker'), 'marker', qos=2)
        c.wait_messages(2)
        check([(m['payload'], m['qos']) for m in c.messages] == [(b'once', 2), (b'marker', 2)],
              'one message, at the highest QoS granted: %s' % c.messages)
    finally:
        c.close()


@paho_row('shared-subscriptions')
def paho_shared(row):
    a, b, pub = Paho(row), Paho(row), Paho(row)
    t = row.topic('sh')
    group = '$share/g/' + t
    try:
        a.connect()
        b.connect()
        pub.connect()
        check(a.subscribe(group, qos=1) == [1] and b.subscribe(group, qos=1) == [1], 'shared SUBACK')
        wait_for(lambda: pub.publish(t, PROBE, qos=1) and a.probes and b.probes, 'both members reachable')
        for i in range(6):
            pub.publish(t, str(i), qos=1)
        wait_for(lambda: len(a.messages) + len(b.messages) >= 6, 'six messages')
        quiet()
        got = sorted(a.payloads() + b.payloads())
        check(got == [str(i) for i in range(6)], 'each message to one member: %s' % got)
    finally:
        for c in (a, b, pub):
            c.close()


@paho_row('receive-maximum')
def paho_receive_maximum(row):
    c = Paho(row)
    try:
        ack = c.connect()
        limit = ack['props'].get('ReceiveMaximum')
        check(limit, 'no Receive Maximum in CONNACK')
        # Past the limit: QoS 2 PUBLISHes written while nothing reads the PUBRECs.
        c.c.max_inflight_messages_set(limit * 2 + 10)
        c.c.loop_stop()
        for i in range(limit + 5):
            c.publish(row.topic('rm'), str(i), qos=2, wait=False)
        c.c.loop_start()
        wait_for(lambda: c.disconnects, 'the DISCONNECT')
        check(c.disconnects[0] == 0x93, 'disconnected with %s, want DISCONNECT 0x93 (a reset loses it)' % c.disconnects[0])
    finally:
        c.close()


@paho_row('receive-maximum-client')
def paho_receive_maximum_client(row):
    sub, pub = Paho(row), Paho(row)
    t = row.topic('crm')
    try:
        sub.connect(ReceiveMaximum=2)
        pub.connect()
        sub.subscribe(t, qos=2)
        routed(row, sub, t, pub)
        for i in range(10):
            pub.publish(t, str(i), qos=1 + i % 2, wait=False)
        sub.wait_messages(10)
        check(sorted(sub.payloads(), key=int) == [str(i) for i in range(10)], 'got %s' % sub.payloads())
    finally:
        sub.close()
        pub.close()


@paho_row('maximum-packet-size')
def paho_maximum_packet_size(row):
    big, small, pub = Paho(row), Paho(row), Paho(row)
    t = row.topic('mps')
    try:
        limit = big.connect()['props'].get('MaximumPacketSize')
        check(limit, 'no Maximum Packet Size in CONNACK')
        big.publish(t, b'.' * (limit + 10), qos=0, wait=False)
        wait_for(lambda: big.disconnects, 'the DISCONNECT')
        check(big.disconnects[0] == 0x95, 'disconnected with %s, want 0x95' % big.disconnects[0])
        small.connect(MaximumPacketSize=200)
        pub.connect()
        small.subscribe(t, qos=1)
        routed(row, small, t, pub)
        pub.publish(t, b'x' * 500, qos=1)
        pub.publish(t, 'fits', qos=1)
        small.wait_messages(1)
        quiet()
        check(small.payloads() == ['fits'], 'over the client\'s Maximum Packet Size: %s' % small.payloads())
    finally:
        for c in (big, small, pub):
            c.close()


@paho_row('server-keep-alive')
def paho_server_keep_alive(row):
    c = Paho(row)
    try:
        ack = c.connect(keepalive=10)
        check(ack['props'].get('ServerKeepAlive') == 60, 'Server Keep Alive %s, want the configured 60' % ack['props'])
    finally:
        c.close()


@paho_row('session-takeover')
def paho_takeover(row):
    cid = row.client_id('take')
    first, second = Paho(row, cid), Paho(row, cid)
    try:
        first.connect()
        second.connect()
        wait_for(lambda: first.disconnects, 'the older connection to be closed')
        check(first.disconnects[0] == 0x8E, 'older connection closed with %s, want DISCONNECT 0x8E' % first.disconnects[0])
    finally:
        second.close()


@paho_row('suback-reason-codes')
def paho_suback_codes(row):
    c = Paho(row)
    try:
        c.connect()
        codes = c.subscribe([('refused/' + row.prefix, SubscribeOptions(qos=1)), (row.topic('ok'), SubscribeOptions(qos=2))])
        check(codes == [0x87, 2], 'SUBACK %s, want [0x87 Not authorized, 2]' % codes)
    finally:
        c.close()


@paho_row('unsubscribe')
def paho_unsubscribe(row):
    c = Paho(row)
    try:
        c.connect()
        c.subscribe(row.topic('gone'), qos=1)
        c.subscribe(row.topic('stays'), qos=1)
        c.unsubscribe(row.topic('gone'))
        c.publish(row.topic('gone'), 'gone', qos=1)
        c.publish(row.topic('stays'), 'stays', qos=1)
        c.wait_messages(1)
        quiet()
        check(c.payloads() == ['stays'], 'after UNSUBSCRIBE: %s' % c.payloads())
    finally:
        c.close()


@paho_row('enhanced-authentication')
def paho_enhanced_auth(row):
    c = Paho(row)
    try:
        ack = c.connect(AuthenticationMethod='SCRAM-SHA-1')
        check(ack['rc'] == 0x8C, 'CONNACK %s, want 0x8C Bad authentication method (not supported)' % ack['rc'])
    finally:
        c.close()


@paho_row('response-information')
def paho_response_information(row):
    c = Paho(row)
    try:
        ack = c.connect(RequestResponseInformation=1)
        check(ack['rc'] == 0 and 'ResponseInformation' not in ack['props'], 'CONNACK %s (not supported: none sent)' % ack)
    finally:
        c.close()


@paho_row('server-redirection')
def paho_server_redirection(row):
    c = Paho(row)
    try:
        ack = c.connect()
        check(ack['rc'] == 0 and 'ServerReference' not in ack['props'], 'CONNACK %s (not supported: none sent)' % ack)
    finally:
        c.close()


# ---- mosquitto_pub / mosquitto_sub ----------------------------------------------------------

FORMAT = '%t|%q|%r|%p|%P|%E|%C|%F|%R|%D|%S'
FIELDS = ('topic', 'qos', 'retain', 'payload', 'user', 'expiry', 'content', 'format', 'response', 'correlation', 'sid')


class Sub:
    """mosquitto_sub in the background, printing FORMAT lines; returns once it has its SUBACK."""

    def __init__(self, row, topic, *args):
        self.row = row
        self.lines = []
        self.probes = set()
        self.subscribed = False
        # Line-buffered: mosquitto_sub's stdout to a pipe is block-buffered, and the SUBACK line is awaited.
        line_buffered = ['stdbuf', '-oL'] if shutil.which('stdbuf') else []
        self.proc = subprocess.Popen(
            line_buffered + ['mosquitto_sub', '-V', 'mqttv5', '-h', row.next_host(), '-p', str(row.port), '-d', '-t', topic,
             '-W', str(int(DEADLINE) * 2), '-F', FORMAT] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.subscribed, 'mosquitto_sub to subscribe')

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip('\n')
            if line.startswith('Client ') or line.startswith('Subscribed'):
                self.subscribed = self.subscribed or line.startswith('Subscribed')
            elif '|' in line:
                fields = dict(zip(FIELDS, line.split('|')))
                if fields['payload'].startswith(PROBE_TEXT):
                    self.probes.add(fields['payload'])
                else:
                    self.lines.append(fields)

    def messages(self, n):
        wait_for(lambda: len(self.lines) >= n, '%d messages from mosquitto_sub (have %d)' % (n, len(self.lines)))
        return self.lines

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


PROBE_TEXT = 'probe-' + uuid.uuid4().hex[:6]


def mosquitto_pub(row, topic, message, *args):
    subprocess.run(['mosquitto_pub', '-V', 'mqttv5', '-h', row.next_host(), '-p', str(row.port), '-t', topic, '-m', message]
                   + list(args), check=True, timeout=DEADLINE, capture_output=True)


def routed_sub(row, topic, *args):
    """A mosquitto_sub on `topic` that probes from another connection reach, the last one sent included (see routed())."""
    sub = Sub(row, topic, *args)
    sent = []

    def probed():
        sent.append('%s%d' % (PROBE_TEXT, len(sent)))
        mosquitto_pub(row, topic, sent[-1], '-q', '1')
        return sub.probes

    wait_for(probed, 'a route to ' + topic)
    wait_for(lambda: sent[-1] in sub.probes, 'the last probe')
    return sub


MOSQUITTO_ROWS = {}


def mosquitto_row(name):
    def register(fn):
        MOSQUITTO_ROWS[name] = fn
        return fn
    return register


@mosquitto_row('connect')
def mosq_connect(row):
    t = row.topic('c')
    sub = routed_sub(row, t)
    try:
        mosquitto_pub(row, t, 'hello', '-q', '1')
        check(sub.messages(1)[0]['payload'] == 'hello', 'got %s' % sub.lines)
    finally:
        sub.close()


@mosquitto_row('qos')
def mosq_qos(row):
    t = row.topic('q')
    sub = routed_sub(row, t, '-q', '2')
    try:
        for qos in (0, 1, 2):
            mosquitto_pub(row, t, 'q%d' % qos, '-q', str(qos))
        got = sorted((m['payload'], m['qos']) for m in sub.messages(3))
        check(got == [('q0', '0'), ('q1', '1'), ('q2', '2')], 'got %s' % got)
    finally:
        sub.close()


@mosquitto_row('retained')
def mosq_retained(row):
    t = row.topic('r')
    mosquitto_pub(row, t, 'kept', '-q', '1', '-r')
    sub = Sub(row, t, '-q', '1')
    try:
        m = sub.messages(1)[0]
        check((m['payload'], m['retain']) == ('kept', '1'), 'retained %s' % m)
    finally:
        sub.close()
        mosquitto_pub(row, t, '', '-q', '1', '-r')


@mosquitto_row('will')
def mosq_will(row):
    t = row.topic('w')
    watcher = routed_sub(row, t, '-q', '1')
    dying = Sub(row, row.topic('dying'), '--will-topic', t, '--will-payload', 'gone', '--will-qos', '1',
                '-D', 'will', 'user-property', 'why', 'gone', '-D', 'will', 'will-delay-interval', '0')
    try:
        dying.close()
        m = watcher.messages(1)[0]
        check((m['payload'], m['user']) == ('gone', 'why:gone'), 'will %s' % m)
        check(watcher.proc.poll() in (None, 0), 'the will broke mosquitto_sub (Will Delay Interval on a PUBLISH?)')
    finally:
        watcher.close()


@mosquitto_row('session-resume')
def mosq_session_resume(row):
    t = row.topic('sr')
    cid = row.client_id('sr')
    first = routed_sub(row, t, '-q', '2', '-c', '-i', cid, '-x', '300')
    first.close()
    for qos in (1, 2):
        mosquitto_pub(row, t, 'q%d' % qos, '-q', str(qos), '-D', 'publish', 'message-expiry-interval', '100')
    # -c without -x: Clean Start 0, and no Session Expiry Interval is sent... mosquitto_sub sends
    # 0xFFFFFFFF with -c alone, so the resume without the property is the paho row's; this one
    # resumes across nodes.
    again = Sub(row, t, '-q', '2', '-c', '-i', cid, '-x', '0')
    try:
        got = again.messages(2)
        check(sorted(m['payload'] for m in got) == ['q1', 'q2'], 'queued %s' % got)
        check(all(0 < int(m['expiry'] or 0) <= 100 for m in got), 'remaining message expiry %s' % [m['expiry'] for m in got])
    finally:
        again.close()


def mosq_passes(row, name, args, count=2):
    t = row.topic(name)
    sub = routed_sub(row, t, '-q', '2')
    try:
        for qos in range(count):
            mosquitto_pub(row, t, 'q%d' % qos, '-q', str(qos + 1), *args)
        return sub.messages(count)
    finally:
        sub.close()


@mosquitto_row('user-properties')
def mosq_user_properties(row):
    for m in mosq_passes(row, 'up', ['-D', 'publish', 'user-property', 'a', '2']):
        check(m['user'] == 'a:2', 'user property %s' % m['user'])


@mosquitto_row('payload-format')
def mosq_payload_format(row):
    for m in mosq_passes(row, 'pf', ['-D', 'publish', 'payload-format-indicator', '1', '-D', 'publish', 'content-type', 'text/plain']):
        check((m['format'], m['content']) == ('1', 'text/plain'), 'format %s content %s' % (m['format'], m['content']))


@mosquitto_row('request-response')
def mosq_request_response(row):
    reply = row.topic('reply')
    for m in mosq_passes(row, 'rr', ['-D', 'publish', 'response-topic', reply, '-D', 'publish', 'correlation-data', 'c1']):
        check((m['response'], m['correlation']) == (reply, 'c1'), 'response %s correlation %s' % (m['response'], m['correlation']))


@mosquitto_row('message-expiry')
def mosq_message_expiry(row):
    for m in mosq_passes(row, 'me', ['-D', 'publish', 'message-expiry-interval', '100']):
        check(0 < int(m['expiry'] or 0) <= 100, 'message expiry %s' % m['expiry'])


@mosquitto_row('subscription-identifiers')
def mosq_subscription_identifiers(row):
    t = row.topic('sid')
    sub = routed_sub(row, t, '-q', '1', '-D', 'subscribe', 'subscription-identifier', '7')
    try:
        mosquitto_pub(row, t, 'x', '-q', '1')
        check(sub.messages(1)[0]['sid'] == '7', 'subscription identifier %s' % sub.lines[0]['sid'])
    finally:
        sub.close()


@mosquitto_row('server-keep-alive')
def mosq_server_keep_alive(row):
    out = subprocess.run(['mosquitto_sub', '-V', 'mqttv5', '-h', row.next_host(), '-p', str(row.port), '-t', row.topic('k'),
                          '-k', '10', '-E', '-d'], capture_output=True, text=True, timeout=DEADLINE)
    check(out.returncode == 0 and 'received CONNACK (0)' in out.stdout, 'mosquitto_sub %s' % out.stdout)


# ---- the run ----------------------------------------------------------------------------------

STACKS = {'paho': PAHO_ROWS, 'mosquitto': MOSQUITTO_ROWS}


def available(stack):
    if stack == 'paho':
        return mqtt is not None
    return shutil.which('mosquitto_sub') is not None and shutil.which('mosquitto_pub') is not None


def run_row(stack, name, fn, hosts, port, index, results):
    started = time.monotonic()
    try:
        detail = fn(Row(hosts, port, index, name)) or ''
        ok = True
    except Failed as err:
        ok, detail = False, str(err)
    except Exception as err:  # a client library error is a failed row, said as such
        ok, detail = False, '%s: %s' % (type(err).__name__, err)
    results[name] = {'row': name, 'stack': stack, 'ok': ok, 'detail': detail, 'ms': int((time.monotonic() - started) * 1000)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--stack', required=True, choices=sorted(STACKS))
    parser.add_argument('--hosts', required=True)
    parser.add_argument('--port', type=int, default=1883)
    parser.add_argument('--rows', default='')
    parser.add_argument('--list', action='store_true', help='print the rows this stack can run and exit')
    args = parser.parse_args()
    rows = STACKS[args.stack]
    if args.list:
        print(json.dumps(sorted(rows)))
        return
    if not available(args.stack):
        print(json.dumps({'absent': args.stack}))
        return
    wanted = [r for r in args.rows.split(',') if r] or sorted(rows)
    hosts = args.hosts.split(',')
    results = {}
    threads = []
    for index, name in enumerate(wanted):
        if name not in rows:
            continue
        t = threading.Thread(target=run_row, args=(args.stack, name, rows[name], hosts, args.port, index, results), daemon=True)
        t.start()
        threads.append((name, t))
    deadline = time.monotonic() + 60
    for name, t in threads:
        t.join(max(0, deadline - time.monotonic()))
        if name not in results:
            results[name] = {'row': name, 'stack': args.stack, 'ok': False, 'detail': 'did not finish in time', 'ms': 60000}
    for name, _ in threads:
        print(json.dumps(results[name]))
    sys.stdout.flush()
    # Paho's network threads of a row that hung must not keep the process.
    os._exit(0)


if __name__ == '__main__':
    main()
