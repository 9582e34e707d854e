"""The dashboard as a person uses it, in a real headless Chromium."""

import time

from playwright.sync_api import expect

from conftest import BASE, call, shot, sign_in


def test_wrong_key_is_refused(page):
    sign_in(page, "sk_live_" + "x" * 40)
    err = page.locator("#signin-error")
    expect(err).to_be_visible()
    expect(err).to_contain_text("refused")
    expect(page.locator("#view")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    shot(page, "wrong-key")
    sign_in(page, "not-the-admin-token")
    expect(err).to_contain_text("admin token was refused")


def test_sign_in_overview_and_keyboard(page, org):
    sign_in(page, org["key"])
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Live tail")
    # The key is in session storage, never in the URL.
    assert org["key"] not in page.url
    assert page.evaluate("sessionStorage.getItem('marquee.dashboard.credential')").find(org["key"]) >= 0
    # Keyboard navigation: Tab reaches the nav links, Enter follows one.
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Event types":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Event types")).to_be_visible()
    expect(page.locator("#type-list")).to_contain_text("fan_checkin")
    shot(page, "event-types")
    page.get_by_role("link", name="Attendance").click()
    expect(page.locator(".empty")).to_be_visible()
    shot(page, "attendance")


def test_failing_endpoint_attempt_and_resend(page, org, receiver):
    st, ep = call("POST", "/v1/endpoints", {"url": receiver.url, "channels": ["venue:browser-fail"]}, key=org["key"])
    assert st == 201, ep
    st, msg = call("POST", "/v1/messages", {"type": "dash.order", "channels": ["venue:browser-fail"], "data": {"n": 1}}, key=org["key"])
    assert st == 201, msg
    deadline = time.time() + 15
    while not receiver.received and time.time() < deadline:
        time.sleep(0.1)
    assert receiver.received, "the receiver never got the delivery"

    sign_in(page, org["key"])
    page.get_by_role("link", name="Endpoints").click()
    row = page.locator("tr", has_text=receiver.url)
    expect(row).to_contain_text("Failing", timeout=10_000)
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Endpoint " + receiver.url)).to_be_visible()
    failed = page.locator("details.attempt[data-status=failed]").first
    for _ in range(20):
        if failed.count():
            break
        page.locator("#attempts-refresh").click()
        page.wait_for_timeout(500)
    expect(failed).to_contain_text("HTTP 500")
    failed.locator("summary").click()
    expect(failed.locator(".response-status")).to_have_text("500")
    expect(failed.locator(".response-body")).to_contain_text("receiver says no")
    # The exact request: its headers and body, signature withheld.
    expect(failed.locator(".request-headers")).to_contain_text("webhook-id: ")
    expect(failed.locator(".request-headers")).to_contain_text("webhook-signature: [redacted]")
    expect(failed.locator(".request-body")).to_contain_text(msg["id"])
    sent_headers, sent_body = receiver.received[0]
    assert sent_headers["webhook-id"] in failed.locator(".request-headers").inner_text()
    # Byte for byte what the receiver got.
    assert failed.locator(".request-body").text_content() == sent_body.decode()
    shot(page, "attempt-failed")

    receiver.status = 204
    receiver.body = b""
    failed.get_by_role("button", name="Resend this message").click()
    ok = page.locator("details.attempt[data-status=succeeded]")
    for _ in range(30):
        if ok.count():
            break
        page.wait_for_timeout(500)
        page.locator("#attempts-refresh").click()
    expect(ok.first).to_contain_text("HTTP 204")
    shot(page, "attempt-resent")

    # Test ping, rotate (new secret shown once), disable.
    page.get_by_role("button", name="Send test ping").click()
    expect(page.locator("#action-result")).to_contain_text("Test ping succeeded")
    page.get_by_role("button", name="Rotate secret…").click()
    page.get_by_role("button", name="Confirm: rotate the signing secret").click()
    expect(page.locator(".new-secret")).to_contain_text("whsec_")
    page.get_by_role("button", name="Disable endpoint").click()
    expect(page.get_by_role("button", name="Enable endpoint")).to_be_visible()
    assert call("GET", f"/v1/endpoints/{ep['id']}", key=org["key"])[1]["enabled"] is False


def start_tail(page, org, channel):
    sign_in(page, org["key"])
    page.get_by_role("link", name="Live tail").click()
    page.get_by_label("Channels").fill(channel)
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#tail-status")).to_contain_text("Connected", timeout=10_000)


def test_live_tail_shows_a_message_within_a_second(page, org):
    start_tail(page, org, "venue:browser-tail")
    st, msg = call("POST", "/v1/messages", {"type": "dash.tail", "channels": ["venue:browser-tail"], "data": {"hello": "tail"}}, key=org["key"])
    assert st == 201, msg
    published = time.monotonic()
    expect(page.locator(f"#tail-list li[data-id='{msg['id']}']")).to_be_visible(timeout=1000)
    print(f"live tail: shown {1000 * (time.monotonic() - published):.0f} ms after the publish answered")
    # The type filter: a non-matching type is not shown.
    page.get_by_role("button", name="Stop").click()
    page.get_by_label("Types").fill("dash.keep*")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#tail-status")).to_contain_text("Connected")
    call("POST", "/v1/messages", {"type": "dash.drop", "channels": ["venue:browser-tail"], "data": {}}, key=org["key"])
    st, kept = call("POST", "/v1/messages", {"type": "dash.keep.this", "channels": ["venue:browser-tail"], "data": {}}, key=org["key"])
    expect(page.locator(f"#tail-list li[data-id='{kept['id']}']")).to_be_visible(timeout=2000)
    expect(page.locator("#tail-list")).not_to_contain_text("dash.drop")
    shot(page, "live-tail")


def test_script_payload_is_shown_as_text(page, org):
    start_tail(page, org, "venue:browser-xss")
    evil = "<script>window.__xss=1;alert('xss')</script><img src=x onerror=\"window.__xss=2;alert(2)\">"
    st, msg = call("POST", "/v1/messages", {"type": "dash.xss", "channels": ["venue:browser-xss"], "data": {"note": evil}}, key=org["key"])
    assert st == 201, msg
    item = page.locator(f"#tail-list li[data-id='{msg['id']}']")
    expect(item).to_be_visible(timeout=2000)
    expect(item.locator("pre")).to_contain_text("<script>window.__xss=1;alert('xss')</script>")
    assert item.locator("script, img").count() == 0
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("main")).to_contain_text("dash.xss")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.dialogs == []
    shot(page, "xss-as-text")


def test_admin_sees_organizations(page, org):
    import os
    sign_in(page, os.environ["MARQUEE_TEST_ADMIN_TOKEN"])
    expect(page.get_by_role("heading", name="Organizations")).to_be_visible()
    o = page.locator(f"details[data-org='{org['id']}']")
    expect(o).to_contain_text(org["name"])
    o.locator("summary").click()
    expect(o).to_contain_text("browser")
    shot(page, "admin-orgs")


def test_phone_viewport(browser, org):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    try:
        sign_in(page, org["key"])
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        shot(page, "phone-overview")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 390px"
        page.get_by_role("link", name="Endpoints").click()
        expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
        shot(page, "phone-endpoints")
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    finally:
        ctx.close()
