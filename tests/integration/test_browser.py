"""The browser path in headless Chromium (Debian's chromium + chromium-driver,
driven by python3-selenium) over wss:// with the test certificate: pages
sharing a counter through /exports.js?shared&room=t while one without
?shared has its own, a streaming method until the loop leaves it, the demo
page's chat and counter between two pages, and a page that reconnects and
resumes after the gateway restarts."""
import os
import shutil
import time

import pytest

from conftest import Roomd

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - the test command installs it
    webdriver = None

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(autouse=True)
def _prerequisites():
    # tests/run.sh installs them; without them these tests fail, not skip.
    assert webdriver and CHROMIUM and DRIVER, "needs chromium, chromium-driver and python3-selenium"


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--ignore-certificate-errors", "--window-size=1000,800"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    d.set_script_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def r(tmp_path_factory):
    g = Roomd(tmp_path_factory.mktemp("browser"), shards=2)
    yield g
    g.stop()


def tab(browser, url):
    """A new tab (its own page, module graph and WebSocket) at url."""
    browser.switch_to.new_window("tab")
    browser.get(url)
    return browser.current_window_handle


def run_js(browser, handle, body):
    """Run an async function body in the tab; it returns a JSON-able value."""
    browser.switch_to.window(handle)
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"(async () => {{ {body} }})().then(done, (e) => done('ERR ' + (e && e.message || e)));")


def wait_for(browser, handle, cond_js, timeout=20):
    browser.switch_to.window(handle)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.execute_script(f"return !!({cond_js});"):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {cond_js}: log={browser.execute_script('return document.body.innerText')!r}")


def test_pages_share_a_counter_and_an_unshared_one_is_isolated(browser, r):
    base = f"https://localhost:{r.tls_port}"
    shared = "const {Counter} = await import(location.origin + '/exports.js?shared&room=t'); window.c = await new Counter(0);"
    a, b = tab(browser, base + "/healthz"), tab(browser, base + "/healthz")
    iso = tab(browser, base + "/healthz")
    assert run_js(browser, a, shared + "return await c.increment();") == 1
    assert run_js(browser, b, shared + "return await c.increment();") == 2
    assert run_js(browser, iso, "const {Counter} = await import(location.origin + '/exports.js?room=t');"
                                "window.c = await new Counter(0); return [await c.increment(), c.$name];")[0] == 1
    assert run_js(browser, a, "return await c.getCount();") == 2
    assert run_js(browser, iso, "return await c.getCount();") == 1
    # A streaming method yields values until the loop leaves it (which cancels it).
    got = run_js(browser, a, """
        const vals = [];
        for await (const v of c.watch()) {
            vals.push(v);
            if (vals.length === 3) break;
            c.increment();
        }
        return [vals, c.$client.streams.size];""")
    assert got == [[2, 3, 4], 0]
    assert run_js(browser, b, "return await c.getCount();") == 4
    for h in (a, b, iso):
        browser.switch_to.window(h)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])


def test_demo_page_chat_and_counter_between_two_pages(browser, r):
    base = f"https://localhost:{r.tls_port}"
    ada = tab(browser, base + "/?room=demo&name=ada")
    bob = tab(browser, base + "/?room=demo&name=bob")
    for h in (ada, bob):
        wait_for(browser, h, "document.getElementById('chat-status').textContent === 'online'")
        wait_for(browser, h, "document.getElementById('counter-status').textContent === 'live'")
    wait_for(browser, ada, "document.getElementById('users').textContent.includes('bob')")
    browser.switch_to.window(ada)
    browser.find_element(By.ID, "text").send_keys("hello bob")
    browser.find_element(By.ID, "send-btn").click()
    wait_for(browser, bob, "document.getElementById('log').textContent.includes('ada: hello bob')")
    browser.switch_to.window(bob)
    browser.find_element(By.ID, "inc10").click()
    wait_for(browser, ada, "document.getElementById('count').textContent === '10'")
    for h in (ada, bob):
        browser.switch_to.window(h)
        browser.close()
    browser.switch_to.window(browser.window_handles[0])


def test_page_reconnects_after_gateway_restart(browser, tmp_path):
    g = Roomd(tmp_path, shards=1)
    base = f"https://localhost:{g.tls_port}"
    page = tab(browser, base + "/?room=rc&name=eve")
    try:
        wait_for(browser, page, "document.getElementById('counter-status').textContent === 'live'")
        browser.find_element(By.ID, "inc").click()
        wait_for(browser, page, "document.getElementById('count').textContent === '1'")
        g.stop()
        wait_for(browser, page, "document.getElementById('chat-status').textContent === 'reconnecting…'")
        g = Roomd(tmp_path, shards=1, port=g.port, tls_port=g.tls_port)
        wait_for(browser, page, "document.getElementById('chat-status').textContent === 'online'", 40)
        wait_for(browser, page, "document.getElementById('counter-status').textContent === 'live'", 40)
        # Resumed: the counter's stream was re-opened, the chat re-joined.
        browser.find_element(By.ID, "inc").click()
        wait_for(browser, page, "document.getElementById('count').textContent === '2'")
        browser.find_element(By.ID, "text").send_keys("back again")
        browser.find_element(By.ID, "send-btn").click()
        wait_for(browser, page, "document.getElementById('log').textContent.includes('eve: back again')")
    finally:
        browser.close()
        browser.switch_to.window(browser.window_handles[0])
        g.stop()
