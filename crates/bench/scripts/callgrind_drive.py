import http.client, json, sys, time
# usage: callgrind_drive.py PORT KEY N [TYPE] [vary]
# TYPE: fan_checkin (default) or signal_posted (a Revolution type with a
# schema and no rule); vary: each publish a distinct body (a new fan and
# scan time, so every check-in counts in the attendance engine).
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ty = sys.argv[4] if len(sys.argv) > 4 else "fan_checkin"
vary = len(sys.argv) > 5 and sys.argv[5] == "vary"
def body(i):
    k = i if vary else 0
    if ty == "signal_posted":
        data = {"artist_id": "art_1", "signal_id": "sig_%d" % k, "type": "text", "body": "Doors at 8, see you soon"}
    else:
        data = {"fan_id": "fan_%x" % (0xc3f + k), "event_id": "evt_928xA", "gate": "MAIN", "ts": 1745123456789 + k}
    return json.dumps({"type": ty, "channels": ["venue:stubbs-austin", "event:evt_928xA"], "data": data})
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.request("GET", "/ping"); c.getresponse().read(); break
    except Exception: time.sleep(0.2)
ok = 0
for i in range(n):
    c.request("POST", "/v1/messages", body(i), {"x-api-key": key, "content-type": "application/json"})
    r = c.getresponse(); r.read(); ok += r.status == 201
print("ok", ok)
