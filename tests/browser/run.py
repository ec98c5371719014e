"""Tollgate's hosted pages in a real browser (issue #14): headless Chromium (Debian's `chromium`)
driven by Playwright for Python, against the dev server (its offline Stripe stand-in and its mail
outbox at /dev/mail). Run by infra/browser.sh, which installs everything and starts the server:

    python3 tests/browser/run.py <base url> <axe.min.js> <screenshot dir>

The flows (each step asserts what a person would see):
  sign up -> verify through the dev outbox -> pricing -> local checkout -> the success page shows
  pro -> the account shows the subscription, usage and a created API key (then revoked) -> a
  second session (another browser) is revoked and its next page load is signed out -> log out;
  forgot password -> reset through the outbox -> log in; email-code sign-in; a non-admin sees no
  admin page; an admin (made with the dev server's POST /dev/admin) finds the user, grants credits,
  disables and enables the account; the configured identity provider's button; a name saved, the
  password changed and the account deleted.
Throughout: no console error, no page error, no Content-Security-Policy violation (recorded by a
`securitypolicyviolation` listener). Every page is checked with axe-core (no serious or critical
violation) and photographed at phone (390 x 844) and desktop (1280 x 800) width.
"""

import json
import os
import re
import sys
import time
import urllib.request
import uuid

from playwright.sync_api import expect, sync_playwright

BASE, AXE, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PASSWORD = "a long enough passphrase 1"
NEW_PASSWORD = "another long passphrase 2"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Requests a step expects to fail (method, path prefix, status): their console line is not an error.
EXPECTED_FAILURES: list[tuple[str, str, int]] = []

axe_source = open(AXE, encoding="utf-8").read()
problems: list[str] = []
step_no = 0


def step(name):
    global step_no
    step_no += 1
    print(f"[{step_no:2}] {name}", flush=True)


def check(ok, what):
    if not ok:
        raise AssertionError(what)


def outbox(to, subject):
    """The newest mail to `to` whose subject contains `subject`, from the dev server's outbox."""
    for _ in range(100):
        with urllib.request.urlopen(f"{BASE}/dev/mail?format=json", timeout=5) as r:
            mails = json.loads(r.read())
        found = [m for m in mails if m["to"] == to and subject in m["subject"]]
        if found:
            return max(found, key=lambda m: m["sent_at_ms"])
        time.sleep(0.1)
    raise AssertionError(f"no mail {subject!r} to {to}")


def link_in(mail, page):
    links = [l for l in mail["links"] if f"/{page}?token=" in l]
    check(links, f"no /{page} link in {mail['links']}")
    return links[0]


INIT_SCRIPT = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def watch(page, who):
    """Records console errors, page errors and CSP violations of `page` in `problems`."""
    def on_console(msg):
        if msg.type != "error":
            return
        text = msg.text
        if "Failed to load resource" in text:
            url = (msg.location or {}).get("url", "")
            for method, prefix, status in EXPECTED_FAILURES:
                if url.startswith(BASE + prefix) and f"status of {status}" in text:
                    return
        problems.append(f"{who}: console error: {text} ({(msg.location or {}).get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"{who}: page error: {e}"))


def ready(page):
    page.wait_for_selector("body[data-ready=true]", timeout=15000)


def csp_violations(page):
    try:
        return page.evaluate("window.__csp || []")
    except Exception:
        return []


def audit(page, name):
    """axe-core on the current page (evaluated over CDP, so the page's CSP does not block it);
    screenshots at phone and desktop width."""
    page.evaluate(axe_source)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    for v in bad:
        problems.append(f"axe {name}: {v['impact']} {v['id']}: {v['help']} at {v['nodes']}")
    minor = [v["id"] for v in result if v not in bad]
    print(f"     axe {name}: {len(bad)} serious/critical, other: {minor or 'none'}")
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    for v in csp_violations(page):
        problems.append(f"{name}: CSP violation: {v}")


def visit(page, path, name):
    page.goto(BASE + path)
    ready(page)
    audit(page, name)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])

        def new_page(who):
            context = browser.new_context(viewport=DESKTOP)
            context.add_init_script(INIT_SCRIPT)
            page = context.new_page()
            watch(page, who)
            return context, page

        ctx, page = new_page("ada")

        step("the landing page and the public pages (axe, screenshots)")
        visit(page, "/", "home")
        expect(page.locator("a[href='/signup']").first).to_be_visible()
        visit(page, "/pricing", "pricing-signed-out")
        expect(page.locator(".plan h2", has_text="Pro")).to_be_visible()
        visit(page, "/login", "login")
        # GitHub is configured (infra/browser.sh): its button starts the authorization flow here.
        github = page.get_by_role("link", name="Continue with GitHub")
        expect(github).to_be_visible()
        check("/auth/oauth/github?redirect_to=" in (github.get_attribute("href") or ""), "the GitHub button's link")
        visit(page, "/forgot-password", "forgot-password")
        visit(page, "/billing/canceled", "billing-canceled")
        visit(page, "/verify-email?token=x", "verify-email")
        visit(page, "/reset-password?token=x", "reset-password")
        visit(page, "/magic-link?token=x", "magic-link")
        check(page.url == BASE + "/magic-link", f"the token left the address bar: {page.url}")

        step("sign up -> the account page, email not verified yet")
        visit(page, "/signup", "signup")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password (8 to 128 characters)").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url(BASE + "/account")
        ready(page)
        expect(page.locator("#profile-email")).to_have_text(email)
        expect(page.locator("#profile-verified")).to_have_text("Not verified")
        expect(page.locator("#verify-notice")).to_be_visible()

        step("verify through the dev outbox: the link page posts the token on a click")
        link = link_in(outbox(email, "erif"), "verify-email")
        page.goto(link)
        ready(page)
        check("token=" not in page.url, "the token is out of the address bar")
        page.get_by_role("button", name="Verify email").click()
        expect(page.locator("#link-status")).to_contain_text("verified")
        page.goto(BASE + "/account")
        ready(page)
        expect(page.locator("#profile-verified")).to_have_text("Verified")

        step("pricing -> local checkout -> the success page shows pro")
        page.goto(BASE + "/pricing")
        ready(page)
        expect(page.locator(".plan.current h2")).to_have_text("Free")
        page.get_by_role("button", name=re.compile(r"^Start 14-day trial")).first.click()
        page.wait_for_url(re.compile(r".*/billing/success\?checkout_session=.*"))
        ready(page)
        expect(page.locator("#success-plan")).to_have_text("pro", timeout=15000)
        audit(page, "billing-success")

        step("the account shows the subscription and usage")
        page.goto(BASE + "/account")
        ready(page)
        expect(page.locator("#subscription-plan")).to_have_text("Pro")
        expect(page.locator("#subscription")).to_contain_text("trialing")
        expect(page.locator("#usage .usage-item").first).to_be_visible()
        expect(page.locator("#usage progress").first).to_be_visible()
        expect(page.locator("#manage-billing")).to_be_visible()
        audit(page, "account")

        step("an API key: created (shown once, with a copy button), listed, revoked")
        page.get_by_label("New key name").fill("browser test")
        page.get_by_role("button", name="Create key").click()
        expect(page.locator("#new-key-value")).to_have_text(re.compile(r"^tg_"))
        expect(page.get_by_role("button", name="Copy")).to_be_visible()
        expect(page.locator("#keys tbody tr")).to_have_count(1)
        page.get_by_role("button", name="Revoke key browser test").click()
        expect(page.locator("#keys")).to_contain_text("Nothing yet.")

        step("a second session (another browser) is revoked from the account page")
        ctx2, page2 = new_page("ada-second-browser")
        page2.goto(BASE + "/login")
        ready(page2)
        page2.locator("#login-email").fill(email)
        page2.locator("#login-password").fill(PASSWORD)
        page2.get_by_role("button", name="Log in").click()
        page2.wait_for_url(BASE + "/account")
        ready(page2)
        page.reload()
        ready(page)
        expect(page.locator("#sessions tbody tr")).to_have_count(2)
        expect(page.locator("#sessions")).to_contain_text("This device")
        page.locator("#sessions button", has_text="Revoke").click()
        expect(page.locator("#sessions tbody tr")).to_have_count(1)
        # The revoked browser's next page load finds its refresh cookie refused: signed out.
        EXPECTED_FAILURES.append(("POST", "/auth/refresh", 401))
        page2.reload()
        page2.wait_for_url(re.compile(r".*/login\?next=/account"))
        ready(page2)
        EXPECTED_FAILURES.pop()
        ctx2.close()

        step("a non-admin sees no admin page")
        visit(page, "/admin", "admin-non-admin")
        expect(page.locator("#admin-denied")).to_be_visible()
        expect(page.locator("#admin-panel")).to_be_hidden()
        expect(page.locator("#nav-admin")).to_be_hidden()

        step("log out")
        page.goto(BASE + "/account")
        ready(page)
        page.get_by_role("button", name="Log out", exact=True).click()
        page.wait_for_url(BASE + "/login")
        ready(page)
        page.goto(BASE + "/account")
        page.wait_for_url(re.compile(r".*/login\?next=/account"))

        step("forgot password -> reset through the outbox -> log in with the new password")
        page.goto(BASE + "/forgot-password")
        ready(page)
        page.get_by_label("Email").fill(email)
        page.get_by_role("button", name="Send the link").click()
        expect(page.locator("#forgot-status")).to_contain_text("on its way")
        page.goto(link_in(outbox(email, "password"), "reset-password"))
        ready(page)
        page.get_by_label("New password (8 to 128 characters)").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set password").click()
        expect(page.locator("#link-status")).to_contain_text("Your password is set")
        page.goto(BASE + "/login")
        ready(page)
        page.locator("#login-email").fill(email)
        page.locator("#login-password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(BASE + "/account")
        ready(page)
        expect(page.locator("#profile-email")).to_have_text(email)
        page.get_by_role("button", name="Log out", exact=True).click()
        page.wait_for_url(BASE + "/login")
        ready(page)

        step("sign in with a code by email, typed with the keyboard only")
        page.locator("#code-email").focus()
        page.keyboard.type(email)
        page.keyboard.press("Enter")
        expect(page.locator("#code-verify-form")).to_be_visible()
        code = outbox(email, "code")["code"]
        check(code and re.fullmatch(r"\d{6}", code), f"a code in the mail: {code}")
        expect(page.locator("#code-value")).to_be_focused()
        page.keyboard.type(code)
        page.keyboard.press("Enter")
        page.wait_for_url(BASE + "/account")
        ready(page)
        expect(page.locator("#subscription-plan")).to_have_text("Pro")
        visit(page, "/pricing", "pricing-signed-in")
        expect(page.locator(".plan.current h2")).to_have_text("Pro")

        step("an admin finds the user, views, grants credits, disables and enables the account")
        ops_email = f"ops-{uuid.uuid4().hex[:10]}@example.com"
        ctx3, ops = new_page("ops")
        ops.goto(BASE + "/signup")
        ready(ops)
        ops.get_by_label("Email").fill(ops_email)
        ops.get_by_label("Password (8 to 128 characters)").fill(PASSWORD)
        ops.get_by_role("button", name="Create account").click()
        ops.wait_for_url(BASE + "/account")
        ready(ops)
        expect(ops.locator("#nav-admin")).to_be_hidden()
        req = urllib.request.Request(BASE + "/dev/admin", method="POST", data=json.dumps({"email": ops_email}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            check(json.loads(r.read())["roles"] == ["admin"], "the dev server granted the role")
        ops.goto(BASE + "/admin")
        ready(ops)
        expect(ops.locator("#nav-admin")).to_be_visible()
        expect(ops.locator("#admin-panel")).to_be_visible()
        ops.get_by_label("Find a user by email").fill(email)
        ops.get_by_role("button", name="Find user").click()
        expect(ops.locator("#admin-user-facts")).to_contain_text(email)
        ops.get_by_label("Amount (negative removes)").fill("50")
        ops.get_by_label("Reason").fill("browser test goodwill")
        ops.get_by_role("button", name="Apply").click()
        expect(ops.locator("#admin-status")).to_contain_text("Balance:")
        audit(ops, "admin")
        ops.get_by_role("button", name="Disable").click()
        expect(ops.locator("#admin-status")).to_contain_text("Disabled")
        expect(ops.locator("#admin-user-facts")).to_contain_text("disabled")
        ops.get_by_role("button", name="Enable").click()
        expect(ops.locator("#admin-user-facts")).to_contain_text("active")
        ctx3.close()

        step("a name saved, the password changed, the account deleted")
        bea_email = f"bea-{uuid.uuid4().hex[:10]}@example.com"
        ctx4, bea = new_page("bea")
        bea.goto(BASE + "/signup")
        ready(bea)
        bea.get_by_label("Email").fill(bea_email)
        bea.get_by_label("Password (8 to 128 characters)").fill(PASSWORD)
        bea.get_by_role("button", name="Create account").click()
        bea.wait_for_url(BASE + "/account")
        ready(bea)
        bea.locator("#profile-name").fill("Bea Example")
        bea.get_by_role("button", name="Save name").click()
        expect(bea.locator("#account-status")).to_contain_text("Name saved")
        bea.reload()
        ready(bea)
        expect(bea.locator("#profile-name")).to_have_value("Bea Example")
        bea.get_by_label("Current password").fill(PASSWORD)
        bea.get_by_label("New password (8 to 128 characters)").fill(NEW_PASSWORD)
        bea.get_by_role("button", name="Change password").click()
        expect(bea.locator("#account-status")).to_contain_text("Password changed")
        bea.get_by_label("Your password (if you have one)").fill(NEW_PASSWORD)
        bea.get_by_label("I understand this cannot be undone").check()
        bea.get_by_role("button", name="Delete my account").click()
        bea.wait_for_url(BASE + "/")
        ready(bea)
        expect(bea.locator("a[href='/signup']").first).to_be_visible()
        outbox(bea_email, "deleted")  # waits for the notice
        with urllib.request.urlopen(BASE + "/dev/mail?format=json", timeout=5) as r:
            deleted = [m for m in json.loads(r.read()) if m["to"] == bea_email and "deleted" in m["subject"].lower()]
        check(len(deleted) == 1, "the account-deleted notice was mailed once")
        ctx4.close()

        ctx.close()
        browser.close()

    if problems:
        print("\nproblems:")
        for p in problems:
            print("  - " + p)
        sys.exit(1)
    print(f"\nbrowser run passed: {step_no} steps; screenshots in {SHOTS}")


if __name__ == "__main__":
    main()
