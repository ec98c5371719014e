// Tollgate's pages (functions/web): one script, no framework, no third-party code.
//
// Security model (README, "Hosted pages"):
// - The access token lives in this script's memory only; the refresh token is the HttpOnly,
//   SameSite=Strict `tollgate_refresh` cookie the API sets (Path=/auth). Each page load gets a
//   fresh access token with POST /auth/refresh (only when this browser signed in before: a
//   non-secret `tg_signed_in` flag in localStorage, so signed-out visits make no failing call).
// - Every API call is a same-origin fetch with a JSON body and an `Authorization: Bearer`
//   header. A cross-site form cannot send either, and the cookie is never sent cross-site
//   (SameSite=Strict), so no CSRF token is needed.
// - Text from the API is put in the page with textContent only, never as HTML.
"use strict";
(() => {
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const FLAG = "tg_signed_in";

  /** Creates an element: h("p", {class: "muted"}, "text", child, …). Strings become text. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** An API error: the HTTP status and the RFC 9457 problem (or null). */
  class ApiError extends Error {
    constructor(status, problem) {
      super(readable(status, problem));
      this.status = status;
      this.problem = problem;
    }
  }

  /** A sentence for the person from a problem+json answer. */
  function readable(status, problem) {
    if (problem && Array.isArray(problem.errors) && problem.errors.length) {
      return problem.errors.map((e) => e.message || e.detail || "").filter(Boolean).join(" ");
    }
    if (problem && problem.detail) return problem.detail;
    if (status === 0) return "The server could not be reached. Check your connection and try again.";
    return "Something went wrong (" + status + "). Try again.";
  }

  const api = {
    token: null,
    claims: null,

    setToken(token) {
      this.token = token;
      this.claims = token ? decodeClaims(token) : null;
      try {
        if (token) localStorage.setItem(FLAG, "1");
        else localStorage.removeItem(FLAG);
      } catch (_) { /* storage disabled: every load just tries the cookie */ }
    },

    /** Gets an access token from the refresh cookie; false when there is no session. */
    async refresh() {
      let res;
      try {
        res = await fetch("/auth/refresh", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Accept": "application/json" },
        });
      } catch (_) {
        return false;
      }
      if (!res.ok) {
        this.setToken(null);
        return false;
      }
      const body = await res.json();
      this.setToken(body.access_token);
      return true;
    },

    /** Calls the API; on a 401 with a session, refreshes once and tries again. */
    async call(method, path, body, retried) {
      const headers = { "Accept": "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (this.token) headers["Authorization"] = "Bearer " + this.token;
      let res;
      try {
        res = await fetch(path, {
          method,
          headers,
          credentials: "same-origin",
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (_) {
        throw new ApiError(0, null);
      }
      if (res.status === 401 && this.token && !retried && (await this.refresh())) {
        return this.call(method, path, body, true);
      }
      const text = await res.text();
      let data = null;
      if (text) {
        try { data = JSON.parse(text); } catch (_) { data = null; }
      }
      if (!res.ok) throw new ApiError(res.status, data);
      return data;
    },

    get(path) { return this.call("GET", path); },
    post(path, body) { return this.call("POST", path, body === undefined ? {} : body); },
  };

  /** The payload of a JWT (not verified here: the API verifies every call). */
  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    } catch (_) {
      return null;
    }
  }

  // ---- small UI helpers ------------------------------------------------------------------------

  function say(target, text, kind) {
    const el = typeof target === "string" ? $(target) : target;
    if (!el) return;
    el.textContent = text || "";
    el.className = "status" + (kind ? " " + kind : "");
    if (kind === "error") el.setAttribute("role", "alert");
    else el.setAttribute("role", "status");
  }

  /** Runs `work` with `button` disabled and marked busy; reports an error in `status`. */
  async function busy(button, status, work) {
    const label = button ? button.textContent : "";
    if (button) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.textContent = label + "…";
    }
    try {
      return await work();
    } catch (e) {
      say(status, e instanceof ApiError ? e.message : readable(0, null), "error");
      return undefined;
    } finally {
      if (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.textContent = label;
      }
    }
  }

  /** `form`'s submit, with the browser's own checks first and the submit button busy. */
  function onSubmit(form, status, work) {
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      say(status, "");
      await busy($("button[type=submit]", form), status, () => work(new FormData(form)));
    });
  }

  function when(date) {
    if (!date) return "—";
    const d = new Date(date);
    return isNaN(d) ? String(date) : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function day(date) {
    if (!date) return "—";
    const d = new Date(date);
    return isNaN(d) ? String(date) : d.toLocaleDateString(undefined, { dateStyle: "medium" });
  }

  function money(amount, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: (currency || "usd").toUpperCase() })
        .format(amount / 100);
    } catch (_) {
      return (amount / 100).toFixed(2) + " " + String(currency || "").toUpperCase();
    }
  }

  function table(headings, rows) {
    if (!rows.length) return h("p", { class: "muted" }, "Nothing yet.");
    return h("div", { class: "table-wrap" },
      h("table", {},
        h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t || h("span", { class: "skip-label" }, "Actions"))))),
        h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
  }

  function fill(target, ...nodes) {
    const el = typeof target === "string" ? $(target) : target;
    if (el) el.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
  }

  function go(path) { window.location.assign(path); }

  /** Where to go after signing in: `?next=/path` on this site, else the account. */
  function next() {
    const n = new URLSearchParams(window.location.search).get("next") || "";
    return /^\/(?!\/)[A-Za-z0-9/_?=&.-]*$/.test(n) ? n : "/account";
  }

  function signedIn(body) {
    api.setToken(body.access_token);
    go(next());
  }

  // ---- identity providers (login, signup) --------------------------------------------------------

  const PROVIDER_NAMES = { github: "GitHub", google: "Google" };

  async function providers() {
    const box = $("#providers");
    if (!box) return;
    let list = [];
    try {
      list = (await api.get("/auth/providers")).providers || [];
    } catch (_) {
      return;
    }
    if (!list.length) return;
    const back = window.location.origin + "/login?next=" + encodeURIComponent(next());
    fill("#provider-buttons", list.map((p) => h("a", {
      class: "button secondary",
      href: "/auth/oauth/" + encodeURIComponent(p) + "?redirect_to=" + encodeURIComponent(back),
    }, "Continue with " + (PROVIDER_NAMES[p] || p))));
    box.classList.remove("hidden");
  }

  /** The OAuth callback lands here with ?code= (or ?error=): exchange it for a session. */
  async function oauthReturn(status) {
    const params = new URLSearchParams(window.location.search);
    const code = params.get("code");
    const error = params.get("error");
    if (!code && !error) return false;
    history.replaceState(null, "", window.location.pathname + (params.get("next") ? "?next=" + encodeURIComponent(params.get("next")) : ""));
    if (error) {
      say(status, "Signing in with that account did not work (" + error + "). Try again or use your email.", "error");
      return true;
    }
    say(status, "Signing you in…");
    try {
      signedIn(await api.post("/auth/oauth/exchange", { code }));
    } catch (e) {
      say(status, e.message, "error");
    }
    return true;
  }

  // ---- pages ----------------------------------------------------------------------------------------

  const pages = {};

  pages.login = async () => {
    if (await oauthReturn("#login-status")) return;
    if (api.token) return go(next());
    providers();
    onSubmit($("#login-form"), "#login-status", async (data) => {
      const body = await api.post("/auth/login", { email: data.get("email"), password: data.get("password") });
      if (body.email_verification_required) {
        say("#login-status", "Verify your email first: open the link we sent you, then log in.", "error");
        return;
      }
      signedIn(body);
    });
    let codeEmail = "";
    onSubmit($("#code-request-form"), "#code-status", async (data) => {
      codeEmail = String(data.get("email"));
      await api.post("/auth/otp/request", { email: codeEmail });
      $("#code-sent-to").textContent = codeEmail;
      $("#code-request-form").classList.add("hidden");
      $("#code-verify-form").classList.remove("hidden");
      $("#code-value").focus();
    });
    onSubmit($("#code-verify-form"), "#code-status", async (data) => {
      signedIn(await api.post("/auth/otp/verify", { email: codeEmail, code: String(data.get("code")).trim() }));
    });
  };

  pages.signup = async () => {
    if (api.token) return go("/account");
    providers();
    onSubmit($("#signup-form"), "#signup-status", async (data) => {
      const body = await api.post("/auth/signup", { email: data.get("email"), password: data.get("password") });
      if (body.email_verification_required) {
        say("#signup-status", "Almost done: open the link we sent to your email, then log in.", "ok");
        $("#signup-form").classList.add("hidden");
        return;
      }
      signedIn(body);
    });
  };

  pages["forgot-password"] = async () => {
    onSubmit($("#forgot-form"), "#forgot-status", async (data) => {
      await api.post("/auth/password/forgot", { email: data.get("email") });
      say("#forgot-status", "If an account uses this email, a link to choose a new password is on its way. It is valid for 30 minutes.", "ok");
      $("#forgot-form").classList.add("hidden");
    });
  };

  // The pages mail links open: the token is taken out of the address bar at once and posted
  // only when the person presses the button (a mail scanner's fetch spends nothing).
  pages.link = async () => {
    const form = $("#link-form");
    const token = new URLSearchParams(window.location.search).get("token") || "";
    if (token) history.replaceState(null, "", window.location.pathname);
    if (!token) {
      say("#link-status", "This link has no token. Open the link from the mail again.", "error");
      $("button", form).disabled = true;
      return;
    }
    onSubmit(form, "#link-status", async (data) => {
      const body = { token };
      if (data.has("password")) body.password = data.get("password");
      const answer = await api.post(form.dataset.action, body);
      say("#link-status", form.dataset.done, "ok");
      $$("input, button", form).forEach((el) => { el.disabled = true; });
      if (answer && answer.access_token) {
        api.setToken(answer.access_token);
        if (form.dataset.next) go(form.dataset.next);
      }
    });
  };

  pages.pricing = async () => {
    let catalog;
    let current = null;
    try {
      [catalog, current] = await Promise.all([
        api.get("/billing/plans"),
        api.token ? api.get("/billing/subscription") : Promise.resolve(null),
      ]);
    } catch (e) {
      return say("#pricing-status", e.message, "error");
    }
    say("#pricing-status", "");
    let interval = "month";
    const render = () => {
      fill("#plans", catalog.plans.map((plan) => planCard(plan, interval, current)));
    };
    $$("#interval-toggle button").forEach((b) => b.addEventListener("click", () => {
      interval = b.dataset.interval;
      $$("#interval-toggle button").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
      render();
    }));
    render();
    if (catalog.credit_packs && catalog.credit_packs.length) {
      fill("#packs", catalog.credit_packs.map((pack) => h("article", { class: "card plan" },
        h("h3", {}, pack.name),
        h("p", { class: "price" }, money(pack.amount, pack.currency)),
        h("p", { class: "muted" }, pack.credits.toLocaleString() + " credits"),
        h("button", { type: "button", onclick: (ev) => startCheckout(ev.currentTarget, { pack: pack.id }) },
          "Buy " + pack.name))));
      $("#packs-section").classList.remove("hidden");
    }
  };

  function planCard(plan, interval, current) {
    const price = (plan.prices || []).find((p) => p.interval === interval);
    const isCurrent = current ? current.plan === plan.id : plan.id === "free" && !!api.token;
    const features = Object.entries(plan.entitlements || {}).map(([k, v]) =>
      h("li", {}, k.replace(/_/g, " ") + (v === true ? "" : v === false ? ": no" : ": " + v)));
    Object.entries(plan.metered || {}).forEach(([k, m]) => features.push(
      h("li", {}, k.replace(/_/g, " ") + ": " + (m.limit === null || m.limit === undefined ? "unlimited" : m.limit + " per period"))));
    if (plan.monthly_credits) features.push(h("li", {}, plan.monthly_credits + " credits every period"));
    let action;
    if (isCurrent) {
      action = h("p", {}, h("span", { class: "badge ok" }, "Your current plan"));
    } else if (plan.id === "free") {
      action = api.token ? null : h("a", { class: "button secondary wide", href: "/signup" }, "Start free");
    } else if (!price) {
      action = h("p", { class: "muted" }, "Not sold " + (interval === "year" ? "yearly" : "monthly") + ".");
    } else if (current && current.access && current.plan !== "free") {
      action = h("button", { type: "button", class: "wide", onclick: (ev) => changePlan(ev.currentTarget, plan, interval) },
        "Switch to " + plan.name);
    } else {
      action = h("button", { type: "button", class: "wide", onclick: (ev) => startCheckout(ev.currentTarget, { plan: plan.id, interval }) },
        plan.trial_days ? "Start " + plan.trial_days + "-day trial" : "Upgrade to " + plan.name);
    }
    return h("article", { class: "card plan" + (isCurrent ? " current" : ""), "aria-current": isCurrent ? "true" : null },
      h("h2", {}, plan.name),
      h("p", { class: "price" }, price ? money(price.amount, price.currency) : plan.id === "free" ? money(0, "usd") : "—",
        h("span", { class: "muted" }, price ? (interval === "year" ? " / year" : " / month") : "")),
      h("ul", {}, features),
      action);
  }

  async function startCheckout(button, body) {
    if (!api.token) return go("/signup?next=/pricing");
    await busy(button, "#pricing-status", async () => {
      const started = await api.post("/billing/checkout", body);
      go(started.url);
    });
  }

  async function changePlan(button, plan, interval) {
    await busy(button, "#pricing-status", async () => {
      await api.post("/billing/subscription/change", { plan: plan.id, interval });
      say("#pricing-status", "Your plan is changing to " + plan.name + ". It shows here once the provider confirms.", "ok");
    });
  }

  pages["billing-success"] = async () => {
    if (!api.token) return go("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    const session = new URLSearchParams(window.location.search).get("checkout_session");
    const path = "/billing/subscription" + (session ? "?checkout_session=" + encodeURIComponent(session) : "");
    try {
      const sub = await api.get(path);
      $("#success-status").classList.add("hidden");
      $("#success-plan").textContent = sub.plan;
      $("#success-state").textContent = sub.status || (sub.access ? "active" : "free");
      $("#success-detail").textContent = sub.trial_end
        ? "Your trial ends on " + day(sub.trial_end) + "."
        : sub.current_period_end ? "Renews on " + day(sub.current_period_end) + "." : "Credits, if you bought a pack, are in your account.";
      $("#success-result").classList.remove("hidden");
    } catch (e) {
      $("#success-status").className = "status error";
      $("#success-status").textContent = e.message;
    }
  };

  pages.account = async () => {
    if (!api.token) return go("/login?next=/account");
    $("#logout").addEventListener("click", (ev) => busy(ev.currentTarget, "#account-status", async () => {
      await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } });
      api.setToken(null);
      go("/login");
    }));
    await Promise.all([profile(), subscription(), usage(), credits(), payments(), keys(), sessions(), identities(), audit()]);
    onSubmit($("#name-form"), "#account-status", async (data) => {
      const name = String(data.get("name")).trim();
      await api.call("PATCH", "/auth/me", { name: name || null });
      say("#account-status", "Name saved.", "ok");
    });
    onSubmit($("#password-form"), "#account-status", async (data) => {
      await api.post("/auth/password/change", {
        current_password: data.get("current_password"),
        new_password: data.get("new_password"),
      });
      $("#password-form").reset();
      say("#account-status", "Password changed. Your other sessions were signed out.", "ok");
      sessions();
    });
    onSubmit($("#key-form"), "#account-status", async (data) => {
      const created = await api.post("/auth/api-keys", { name: String(data.get("name")).trim() });
      $("#new-key-value").textContent = created.key;
      $("#new-key").classList.remove("hidden");
      $("#key-form").reset();
      keys();
    });
    $("#copy-key").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("#new-key-value").textContent);
        say("#account-status", "Key copied.", "ok");
      } catch (_) {
        say("#account-status", "Select the key and copy it by hand.", "error");
      }
    });
    $("#logout-others").addEventListener("click", (ev) => busy(ev.currentTarget, "#account-status", async () => {
      await api.post("/auth/logout-all", { keep_current: true });
      say("#account-status", "Every other session was signed out.", "ok");
      sessions();
    }));
    $("#resend").addEventListener("click", (ev) => busy(ev.currentTarget, "#account-status", async () => {
      await api.post("/auth/verify-email/resend");
      say("#account-status", "A new verification link is on its way.", "ok");
    }));
    onSubmit($("#delete-form"), "#account-status", async (data) => {
      const password = String(data.get("password") || "");
      await api.call("DELETE", "/auth/me", password ? { password } : {});
      api.setToken(null);
      go("/");
    });
  };

  /** Runs `work`, showing its error in `target`: a status line, or a section it fills. */
  async function section(target, work) {
    try {
      await work();
    } catch (e) {
      const el = $(target);
      if (el && el.classList.contains("status")) say(el, e.message, "error");
      else fill(target, h("p", { class: "status error", role: "alert" }, e.message));
    }
  }

  function profile() {
    return section("#account-status", async () => {
      const me = await api.get("/auth/me");
      $("#profile-email").textContent = me.email;
      const badge = $("#profile-verified");
      badge.textContent = me.email_verified ? "Verified" : "Not verified";
      badge.className = "badge " + (me.email_verified ? "ok" : "warn");
      $("#profile-name").value = me.name || "";
      $("#verify-notice").classList.toggle("hidden", me.email_verified);
      const admin = $("#nav-admin");
      if (admin) admin.classList.toggle("hidden", !isAdmin());
    });
  }

  /** Plan ids to their names, from the public catalog (the id when it is not there). */
  async function planNames() {
    try {
      const catalog = await api.get("/billing/plans");
      return Object.fromEntries(catalog.plans.map((p) => [p.id, p.name]));
    } catch (_) {
      return {};
    }
  }

  function subscription() {
    return section("#subscription", async () => {
      const [sub, names] = await Promise.all([api.get("/billing/subscription"), planNames()]);
      const facts = h("dl", { class: "facts" },
        h("dt", {}, "Plan"), h("dd", { id: "subscription-plan", "data-plan": sub.plan }, names[sub.plan] || sub.plan),
        h("dt", {}, "Status"), h("dd", {}, sub.status || "no subscription"),
        sub.trial_end ? [h("dt", {}, "Trial ends"), h("dd", {}, day(sub.trial_end))] : null,
        sub.current_period_end ? [h("dt", {}, sub.cancel_at_period_end ? "Ends" : "Renews"), h("dd", {}, day(sub.current_period_end))] : null,
        sub.grace_until ? [h("dt", {}, "Access until"), h("dd", {}, day(sub.grace_until))] : null);
      const actions = h("div", { class: "row" });
      if (sub.status && sub.provider) {
        if (sub.cancel_at_period_end) {
          actions.append(h("button", { type: "button", class: "secondary", onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
            await api.post("/billing/subscription/resume");
            say("#account-status", "Resuming your subscription; it shows here once the provider confirms.", "ok");
          }) }, "Resume"));
        } else if (sub.access) {
          actions.append(h("button", { type: "button", class: "secondary", onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
            await api.post("/billing/subscription/cancel");
            say("#account-status", "Your subscription will end at the end of the period; it shows here once the provider confirms.", "ok");
          }) }, "Cancel at period end"));
        }
        actions.append(h("button", { type: "button", class: "secondary", id: "manage-billing", onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
          go((await api.post("/billing/portal")).url);
        }) }, "Manage billing"));
      }
      actions.append(h("a", { class: "button" + (sub.access ? " secondary" : ""), href: "/pricing" }, sub.access ? "Change plan" : "Upgrade"));
      fill("#subscription", facts, actions);
    });
  }

  function usage() {
    return section("#usage", async () => {
      const list = (await api.get("/usage")).usage || [];
      if (!list.length) return fill("#usage", h("p", { class: "muted" }, "Your plan has no metered features."));
      fill("#usage", list.map((u) => {
        const id = "usage-" + u.feature;
        const limited = u.limit !== null && u.limit !== undefined;
        return h("div", { class: "usage-item" },
          h("div", { class: "spread" },
            h("span", { id }, u.feature.replace(/_/g, " ")),
            h("span", { class: "muted" }, limited ? u.used + " of " + u.limit : u.used + " used (unlimited)")),
          limited ? h("progress", { max: String(Math.max(u.limit, 1)), value: String(Math.min(u.used, u.limit)), "aria-labelledby": id }) : null,
          h("p", { class: "muted" }, "Resets " + day(u.resets_at) + (u.credits_per_unit ? " · " + u.credits_per_unit + " credit(s) per unit" : "")));
      }));
    });
  }

  function credits() {
    return section("#credits", async () => {
      const c = await api.get("/billing/credits?limit=10");
      fill("#credits",
        h("p", {}, "Balance: ", h("strong", {}, String(c.balance)), " credits"),
        table(["When", "What", "Credits"], (c.entries || []).map((e) => [when(e.at), e.kind + (e.pack ? " (" + e.pack + ")" : e.feature ? " (" + e.feature + ")" : ""), (e.amount > 0 ? "+" : "") + e.amount])),
        h("p", {}, h("a", { href: "/pricing#packs-section" }, "Buy credits")));
    });
  }

  function payments() {
    return section("#payments", async () => {
      const p = await api.get("/billing/payments?limit=10");
      fill("#payments", table(["When", "Amount", "Status"], (p.payments || []).map((x) => [when(x.paid_at), money(x.amount, x.currency), x.status])));
    });
  }

  function keys() {
    return section("#keys", async () => {
      const list = (await api.get("/auth/api-keys")).keys || [];
      fill("#keys", table(["Name", "Key", "Created", "Last used", ""], list.map((k) => [
        k.name, h("code", {}, k.prefix + "…"), when(k.created_at), when(k.last_used_at),
        h("button", { type: "button", class: "secondary", "aria-label": "Revoke key " + k.name, onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
          await api.call("DELETE", "/auth/api-keys/" + encodeURIComponent(k.id));
          say("#account-status", "Key " + k.name + " revoked.", "ok");
          $("#new-key").classList.add("hidden");
          keys();
        }) }, "Revoke"),
      ])));
    });
  }

  function sessions() {
    return section("#sessions", async () => {
      const list = (await api.get("/auth/sessions")).sessions || [];
      fill("#sessions", table(["Device", "Signed in", "Last active", ""], list.map((s) => [
        [s.user_agent ? shortAgent(s.user_agent) : "Unknown device", s.ip ? h("span", { class: "muted" }, " · " + s.ip) : null],
        when(s.created_at) + (s.method ? " (" + s.method + ")" : ""),
        when(s.last_used_at),
        s.current ? h("span", { class: "badge ok" }, "This device")
          : h("button", { type: "button", class: "secondary", "aria-label": "Revoke the session of " + when(s.created_at), onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
            await api.call("DELETE", "/auth/sessions/" + encodeURIComponent(s.id));
            say("#account-status", "Session revoked.", "ok");
            sessions();
          }) }, "Revoke"),
      ])));
    });
  }

  function shortAgent(agent) {
    const browser = /Edg\//.test(agent) ? "Edge" : /Chrome\//.test(agent) ? "Chrome" : /Firefox\//.test(agent) ? "Firefox" : /Safari\//.test(agent) ? "Safari" : /curl\//.test(agent) ? "curl" : "Browser";
    const os = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS" : /Mac OS X/.test(agent) ? "macOS" : /Windows/.test(agent) ? "Windows" : /Linux/.test(agent) ? "Linux" : "";
    return browser + (os ? " on " + os : "");
  }

  function identities() {
    return section("#identities", async () => {
      const body = await api.get("/auth/identities");
      const list = body.identities || [];
      fill("#identities",
        list.length ? table(["Provider", "Email", "Linked", ""], list.map((i) => [
          PROVIDER_NAMES[i.provider] || i.provider, i.email || "—", day(i.linked_at),
          h("button", { type: "button", class: "secondary", onclick: (ev) => busy(ev.currentTarget, "#account-status", async () => {
            await api.call("DELETE", "/auth/identities/" + encodeURIComponent(i.provider));
            say("#account-status", "Unlinked.", "ok");
            identities();
          }) }, "Unlink"),
        ])) : h("p", { class: "muted" }, "No linked accounts."),
        body.has_password ? null : h("p", { class: "muted" }, "You sign in without a password."));
    });
  }

  function audit() {
    return section("#audit", async () => {
      const page = await api.get("/auth/audit?limit=10");
      fill("#audit", table(["When", "What", "From"], (page.items || []).map((a) => [
        when(a.at), a.action.replace(/_/g, " "), a.ip || a.actor || "—",
      ])));
    });
  }

  function isAdmin() {
    return !!(api.claims && Array.isArray(api.claims.roles) && api.claims.roles.includes("admin"));
  }

  pages.admin = async () => {
    if (!api.token) return go("/login?next=/admin");
    // The role is in the access token; the API checks the stored role on every call anyway.
    if (!isAdmin()) {
      $("#admin-denied").classList.remove("hidden");
      return;
    }
    $("#admin-panel").classList.remove("hidden");
    let user = null;
    const show = async (id) => {
      const view = await api.get("/admin/users/" + encodeURIComponent(id));
      user = view.user;
      fill("#admin-user-facts", h("dl", { class: "facts" },
        h("dt", {}, "Email"), h("dd", {}, view.user.email),
        h("dt", {}, "Status"), h("dd", {}, view.user.status || "active"),
        h("dt", {}, "Plan"), h("dd", {}, view.subscription ? view.subscription.plan : "free"),
        h("dt", {}, "Credits"), h("dd", {}, String(view.credit_balance)),
        h("dt", {}, "Sessions"), h("dd", {}, String((view.sessions || []).length)),
        h("dt", {}, "API keys"), h("dd", {}, String((view.api_keys || []).length))));
      $("#admin-user").classList.remove("hidden");
    };
    onSubmit($("#find-form"), "#admin-status", async (data) => {
      const found = await api.get("/admin/users?email=" + encodeURIComponent(data.get("email")));
      if (!found.users || !found.users.length) {
        $("#admin-user").classList.add("hidden");
        return say("#admin-status", "No user has this email.", "error");
      }
      await show(found.users[0].id);
    });
    const act = (selector, path, done) => $(selector).addEventListener("click", (ev) => busy(ev.currentTarget, "#admin-status", async () => {
      if (!user) return;
      await api.post("/admin/users/" + encodeURIComponent(user.id) + path);
      say("#admin-status", done, "ok");
      await show(user.id);
    }));
    act("#admin-disable", "/disable", "Disabled: every session and key of this user is refused now.");
    act("#admin-enable", "/enable", "Enabled.");
    onSubmit($("#grant-form"), "#admin-status", async (data) => {
      if (!user) return;
      const answer = await api.post("/admin/users/" + encodeURIComponent(user.id) + "/credits", {
        amount: Number(data.get("amount")),
        reason: String(data.get("reason")),
      });
      say("#admin-status", "Done. Balance: " + answer.balance + " credits.", "ok");
      $("#grant-form").reset();
      await show(user.id);
    });
  };

  pages.index = async () => {};
  pages["billing-canceled"] = async () => {};

  // ---- start ------------------------------------------------------------------------------------

  async function boot() {
    let flagged = false;
    try { flagged = localStorage.getItem(FLAG) === "1"; } catch (_) { flagged = true; }
    if (flagged) await api.refresh();
    const state = api.token ? "signed-in" : "signed-out";
    $$("[data-when]").forEach((el) => el.classList.toggle("hidden", el.dataset.when !== state));
    const admin = $("#nav-admin");
    if (admin) admin.classList.toggle("hidden", !isAdmin());
    const page = document.body.dataset.page;
    if (pages[page]) await pages[page]();
    document.body.setAttribute("data-ready", "true");
  }

  boot();
})();
