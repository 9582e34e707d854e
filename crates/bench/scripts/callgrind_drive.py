import http.client, json, sys, time
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
# "vary": a distinct fan_id per publish (every scan counts for the attendance engine).
vary = len(sys.argv) > 4 and sys.argv[4] == "vary"
body = json.dumps({"type":"fan_checkin","channels":["venue:stubbs-austin","event:evt_928xA"],"data":{"fan_id":"fan_0xc3f","event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}})
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.request("GET", "/ping"); c.getresponse().read(); break
    except Exception: time.sleep(0.2)
ok = 0
for i in range(n):
    if vary:
        body = json.dumps({"type":"fan_checkin","channels":["venue:stubbs-austin","event:evt_928xA"],"data":{"fan_id":"fan_%07d" % i,"event_id":"evt_928xA","gate":"MAIN","ts":1745123456789}})
    c.request("POST", "/v1/messages", body, {"x-api-key": key, "content-type": "application/json"})
    r = c.getresponse(); r.read(); ok += r.status == 201
print("ok", ok)
