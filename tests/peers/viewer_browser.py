"""The trace viewer in a real browser: headless Chromium (the system's,
Debian's `chromium`) driven by Playwright for Python.

Reads on stdin {"base": "http://127.0.0.1:PORT", "trace_id": "...",
"new_trace_id": "...", "new_parent_span_id": "...", "new_child_span_id": "..."}
and prints on stdout, as JSON, what the pages showed; tests/it/viewer.rs
judges it. While the list page is open, this script sends a new trace to
the viewer's OTLP/HTTP receiver (JSON), child span first, then its root, to
see the row appear and then update without a reload.

`--screenshot PATH` also saves the trace page (docs/viewer.png is made so).
"""

import json
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15000


def post_span(base, trace_id, span_id, parent_id, name, service, route=None):
    now = time.time_ns()
    attributes = [{"key": "peer", "value": {"stringValue": "python"}}]
    if route:
        attributes.append({"key": "http.route", "value": {"stringValue": route}})
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2 if parent_id is None else 1,
        "startTimeUnixNano": str(now - 5_000_000),
        "endTimeUnixNano": str(now),
        "attributes": attributes,
        "status": {"code": 1},
    }
    if parent_id is not None:
        span["parentSpanId"] = parent_id
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [{"scope": {"name": "viewer_browser.py"}, "spans": [span]}],
            }
        ]
    }
    request = urllib.request.Request(
        base + "/v1/traces",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.status


def spans_shown(page):
    return page.eval_on_selector_all(
        "button.span-row",
        """rows => rows.map(r => ({
            span_id: r.dataset.spanId,
            name: r.querySelector('.span-name').textContent,
            service: r.querySelector('.chip').textContent,
            depth: Number(r.dataset.depth),
            error: r.classList.contains('is-error'),
            bar_width: r.querySelector('.bar').style.width,
        }))""",
    )


def main():
    args = sys.argv[1:]
    screenshot = args[args.index("--screenshot") + 1] if "--screenshot" in args else None
    given = json.load(sys.stdin)
    base = given["base"].rstrip("/")
    trace_id = given["trace_id"]
    out = {}
    console_errors = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append("page error: " + str(e)))

        # --- the list: a new trace appears, then updates, without a reload ---
        page.goto(base + "/")
        page.wait_for_selector(f'tr[data-trace-id="{trace_id}"]', timeout=WAIT_MS)
        page.evaluate("window.__sameDocument = true")
        new_id = given["new_trace_id"]
        root_id = given["new_parent_span_id"]
        child_id = given["new_child_span_id"]
        post_span(base, new_id, child_id, root_id, "python child", "python-peer")
        row = f'tr[data-trace-id="{new_id}"]'
        page.wait_for_selector(row, timeout=WAIT_MS)
        out["new_row_before_root"] = {
            "name": page.text_content(row + " a.trace-link"),
            "pending": page.query_selector(row + " .pending") is not None,
        }
        post_span(base, new_id, root_id, None, "GET /python/{id}", "python-peer", "/python/{id}")
        page.wait_for_function(
            """id => { const r = document.querySelector(`tr[data-trace-id="${id}"]`);
                       return r && !r.querySelector('.pending'); }""",
            arg=new_id,
            timeout=WAIT_MS,
        )
        out["new_row_after_root"] = {
            "name": page.text_content(row + " a.trace-link"),
            "pending": page.query_selector(row + " .pending") is not None,
        }
        out["same_document"] = page.evaluate("window.__sameDocument === true")
        out["first_row"] = page.get_attribute("#trace-rows tr:first-child", "data-trace-id")
        # The filters: error traces only.
        page.select_option("#f-status", "error")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#trace-rows tr')).every(r => r.classList.contains('is-error'))",
            timeout=WAIT_MS,
        )
        out["error_filter_rows"] = page.eval_on_selector_all(
            "#trace-rows tr", "rows => rows.map(r => r.dataset.traceId)"
        )
        page.select_option("#f-status", "")

        # --- the trace page, reached from the list by keyboard ---
        page.focus(f'tr[data-trace-id="{trace_id}"] a.trace-link')
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: f"/traces/{trace_id}" in url, timeout=WAIT_MS)
        page.wait_for_selector("button.span-row", timeout=WAIT_MS)
        page.wait_for_selector("li.log", timeout=WAIT_MS)
        out["spans"] = spans_shown(page)
        out["trace_id_shown"] = page.text_content("#trace-id")
        out["heading_error"] = page.text_content(".trace-head h1")
        out["logs"] = page.eval_on_selector_all(
            "li.log",
            """items => items.map(li => ({
                body: li.querySelector('.body').textContent,
                fields: Array.from(li.querySelectorAll('dt')).map(dt => [dt.textContent, dt.nextElementSibling.textContent]),
            }))""",
        )
        # Every span's details, selected by keyboard: focus, arrows, Enter.
        details = {}
        page.focus("button.span-row >> nth=0")
        for i in range(len(out["spans"])):
            page.keyboard.press("Enter")
            selected = page.get_attribute("button.span-row.selected", "data-span-id")
            details[selected] = {
                "attributes": page.eval_on_selector_all(
                    "#details table.attrs tr",
                    "rows => rows.map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent])",
                ),
                "exceptions": page.eval_on_selector_all(
                    "#details .exception", "xs => xs.map(x => x.textContent)"
                ),
            }
            page.keyboard.press("ArrowDown")
        out["details"] = details
        html = page.content()
        out["raw_in_page"] = [r for r in given.get("raw", []) if r in html]
        out["img_elements"] = page.evaluate("document.querySelectorAll('img').length")
        out["script_elements"] = page.evaluate(
            "Array.from(document.querySelectorAll('script')).map(s => s.getAttribute('src'))"
        )
        out["pwned"] = page.evaluate("typeof window.__pwned !== 'undefined'")
        if screenshot:
            page.focus("button.span-row >> nth=3")
            page.keyboard.press("Enter")
            page.mouse.move(0, 0)
            page.screenshot(path=screenshot, full_page=False)

        # --- a narrow window: nothing wider than the window ---
        page.set_viewport_size({"width": 420, "height": 800})
        out["narrow_overflow_px"] = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        page.set_viewport_size({"width": 1440, "height": 900})

        # --- the errors page links to the trace ---
        page.goto(base + "/errors")
        page.wait_for_selector("#errors a", timeout=WAIT_MS)
        out["error_links"] = page.eval_on_selector_all(
            "#errors a, #error-groups a", "links => links.map(a => a.getAttribute('href'))"
        )
        out["error_rows"] = page.eval_on_selector_all(
            "#errors tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
        )
        page.click(f'#errors a[href="/traces/{trace_id}"] >> nth=0')
        page.wait_for_url(lambda url: f"/traces/{trace_id}" in url, timeout=WAIT_MS)
        page.wait_for_selector("button.span-row", timeout=WAIT_MS)
        out["followed_error_link"] = page.text_content("#trace-id")

        out["pwned_at_end"] = page.evaluate("typeof window.__pwned !== 'undefined'")
        out["console_errors"] = console_errors
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
